// Package attachment is the one way a plugin records, applies, checks and
// removes the netfilter state of an attachment (a container's interface on
// one network). Each kind of state (bridge's masquerade and forwarding,
// portmap's host ports, and every later kind) is a Kind: the folder of its
// records and the backend calls that queue, remove and check one family's
// spec. Every change is a Change: Install and Remove queue on it, and
// Commit applies it as one netfilter transaction.
//
// The order is always the same:
//   - Install writes the record before the rules it describes (intent
//     first), so a crash can leave a record without rules, which Remove
//     handles, but never rules without a record. A record already there is
//     from an earlier ADD of the same attachment: its state is removed in
//     the same transaction, before the new state is added.
//   - If the commit fails, everything the change installed is removed in a
//     second transaction (removals succeed when there is nothing to
//     remove), and then the records it wrote are deleted; if that removal
//     fails too, the records stay, for DEL or GC.
//   - Remove deletes what the record says, through the backend it names,
//     and the record once that has landed. Without a record (lost, or the
//     state was never recorded) it asks every available backend to find
//     the owner's state by its tag.
package attachment

import (
	"net"

	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter/host"
	"github.com/dockernet/cni-plugins/plugins/pkg/state"
)

// Spec is one family's part of an attachment's state of one kind.
type Spec interface {
	Family() netfilter.Family
	Attachment() netfilter.Owner
	Address() net.IP
	Ports() []netfilter.PortMapping
}

// Kind is one kind of netfilter state an attachment can own.
type Kind[S Spec] struct {
	Name   string // folder of the records in the state store
	Plugin string // names the plugin and option in error messages
	Add    func(netfilter.Backend, *netfilter.Txn, S)
	Del    func(netfilter.Backend, *netfilter.Txn, S)
	Check  func(netfilter.Backend, S) error
	// FlushUDP: after a committed change added or removed spec's state,
	// the UDP conntrack entries of its host ports go, once per family for
	// the whole change (each flush reads the whole conntrack table).
	FlushUDP bool
}

// Env is where attachments' state lives: the record store and the
// netfilter backends (host.Host on a real machine).
type Env struct {
	Store    state.Store
	Backends Backends
}

// HostEnv is the Env of a plugin on a real machine: the records under
// stateDir (state.DefaultDir when empty) and the kernel's backends.
func HostEnv(stateDir string) Env {
	return Env{Store: state.New(stateDir), Backends: host.Host{}}
}

// Backends makes the backend called name for one family, and lists the
// backends a search without a record must visit.
type Backends interface {
	New(name string, f netfilter.Family) (netfilter.Backend, error)
	Available() []string
}

// Record is what one kind installed for one attachment. Its JSON form,
// {"Backend": ..., "Specs": [...]}, is the on-disk format.
type Record[S Spec] struct {
	Backend string
	Specs   []S
}

// Install records rec for owner o and queues its state on c; an earlier
// record's state is queued for removal first.
func (k Kind[S]) Install(c *Change, o netfilter.Owner, rec Record[S]) {
	prev, found, err := k.load(c.env, o)
	if err != nil {
		c.fail(err)
		return
	}
	if found {
		k.queueRemoval(c, prev.Backend, prev.Specs, true)
	}
	if err := c.env.Store.Save(k.Name, o.Tag(), rec); err != nil {
		c.fail(cnierr.IO("%s: %v", k.Plugin, err))
		return
	}
	c.onFailure(func() { _ = c.env.Store.Remove(k.Name, o.Tag()) })
	k.queueAdds(c, rec, true)
}

// queueAdds queues the adds of rec's specs through the backend it names;
// undone too means a failed commit removes them again.
func (k Kind[S]) queueAdds(c *Change, rec Record[S], undone bool) {
	for _, spec := range rec.Specs {
		be, err := c.env.Backends.New(rec.Backend, spec.Family())
		if err != nil {
			c.fail(cnierr.Config("%s: %v", k.Plugin, err))
			return
		}
		k.Add(be, &c.tx, spec)
		if undone {
			c.undo = append(c.undo, func(tx *netfilter.Txn) { k.Del(be, tx, spec) })
		}
		k.whenLanded(c, be, spec)
	}
}

// queueRemoval queues the removal of specs through backend name; undone
// too means a failed commit removes them again (a re-ADD's old state,
// whose record the new one replaced).
func (k Kind[S]) queueRemoval(c *Change, name string, specs []S, undone bool) {
	for _, spec := range specs {
		be, err := c.env.Backends.New(name, spec.Family())
		if err != nil {
			c.fail(cnierr.Config("%s: %v", k.Plugin, err))
			return
		}
		k.Del(be, &c.tx, spec)
		if undone {
			c.undo = append(c.undo, func(tx *netfilter.Txn) { k.Del(be, tx, spec) })
		}
		k.whenLanded(c, be, spec)
	}
}

func (k Kind[S]) whenLanded(c *Change, be netfilter.Backend, spec S) {
	if k.FlushUDP {
		c.flushUDP(be.Family(), spec.Ports())
	}
}

// Remove queues the removal of o's state of this kind and, once it has
// landed, of its record. Without a record it looks for o's state by tag
// in each of families, through every available backend, asking each to
// delete byTag (a spec with only the owner and what the backend needs
// besides); no families means no state can exist without a record.
func (k Kind[S]) Remove(c *Change, o netfilter.Owner, byTag S, families []netfilter.Family) {
	rec, found, err := k.load(c.env, o)
	if err != nil {
		c.fail(err)
		return
	}
	if found {
		k.removeRecord(c, o.Tag(), rec)
		return
	}
	for _, name := range c.env.Backends.Available() {
		for _, f := range families {
			be, err := c.env.Backends.New(name, f)
			if err != nil && f == netfilter.IPv6 {
				continue // no IPv6 tools: no IPv6 state to search
			}
			if err != nil {
				c.fail(cnierr.Config("%s: %v", k.Plugin, err))
				return
			}
			k.Del(be, &c.tx, byTag)
			k.whenLanded(c, be, byTag)
		}
	}
}

// removeRecord queues the removal of what rec says and, after, of rec.
func (k Kind[S]) removeRecord(c *Change, tag string, rec Record[S]) {
	k.queueRemoval(c, rec.Backend, rec.Specs, false)
	c.onSuccess(func() error {
		if err := c.env.Store.Remove(k.Name, tag); err != nil {
			return cnierr.IO("%s: %v", k.Plugin, err)
		}
		return nil
	})
}

// CheckInstalled verifies that specs are in place, through the backend o's
// record names, or backend when there is no record.
func (k Kind[S]) CheckInstalled(env Env, o netfilter.Owner, specs []S, backend string) error {
	rec, found, err := k.load(env, o)
	if err != nil {
		return err
	}
	if found {
		backend = rec.Backend
	}
	return k.Verify(env, Record[S]{Backend: backend, Specs: specs})
}

// Recorded returns o's record of this kind, if it has one.
func (k Kind[S]) Recorded(env Env, o netfilter.Owner) (Record[S], bool, error) { return k.load(env, o) }

func (k Kind[S]) load(env Env, o netfilter.Owner) (Record[S], bool, error) {
	return k.loadTag(env, o.Tag())
}

func (k Kind[S]) loadTag(env Env, tag string) (Record[S], bool, error) {
	var rec Record[S]
	found, err := env.Store.Load(k.Name, tag, &rec)
	if err != nil {
		return rec, false, cnierr.IO("%s: %v", k.Plugin, err)
	}
	return rec, found, nil
}
