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
	"slices"

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
	// Network names the bridge whose network spec's state depends on
	// (nil, or "": none): while a record of the kind names it, the
	// network's own state stays (see network.go).
	Network func(S) string
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
// {"Version": 1, "Backend": ..., "Specs": [...]}, is the on-disk format.
type Record[S Spec] struct {
	// Version of the format: 0 (absent) before network records existed,
	// 1 since. A record of a later version is reported, never guessed at.
	Version int `json:",omitempty"`
	Backend string
	Specs   []S
}

// RecordVersion is the version Install writes.
const RecordVersion = 1

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
		if k.Network != nil && c.lockShared() == nil {
			_ = c.leave(o.Tag(), k.Name) // joined again below, maybe elsewhere
		}
	}
	rec.Version = RecordVersion
	if err := c.env.Store.Save(k.Name, o.Tag(), rec); err != nil {
		c.fail(cnierr.IO("%s: %v", k.Plugin, err))
		return
	}
	c.onFailure(func() { _ = c.env.Store.Remove(k.Name, o.Tag()) })
	k.join(c, o, rec)
	k.queueAdds(c, rec, true)
}

// join makes o a member of the networks rec's specs depend on, with the
// record of what the kind holds there.
func (k Kind[S]) join(c *Change, o netfilter.Owner, rec Record[S]) {
	if k.Network == nil {
		return
	}
	byBridge := k.bridges(rec)
	if len(byBridge) > 0 {
		// A failed commit drops the record, and the membership with it.
		c.onFailure(func() { _ = c.leave(o.Tag(), k.Name) })
	}
	for br, fams := range byBridge {
		c.join(k.Name, br, o.Tag(), NetworkRecord{Version: NetworkVersion, Bridge: br, Network: o.Network, Backend: rec.Backend, Families: fams})
	}
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
	k.leaveOnSuccess(c, o.Tag())
}

// leaveOnSuccess drops tag's memberships of this kind once its state's
// removal has landed.
func (k Kind[S]) leaveOnSuccess(c *Change, tag string) {
	if k.Network != nil {
		c.onSuccess(func() error { return c.leave(tag, k.Name) })
	}
}

// removeRecord queues the removal of what rec says and, after, of rec.
func (k Kind[S]) removeRecord(c *Change, tag string, rec Record[S]) {
	k.queueRemoval(c, rec.Backend, rec.Specs, false)
	// The membership before the record: a crash in between leaves a
	// record, which the next DEL or GC finds, never a member nothing
	// names.
	k.leaveOnSuccess(c, tag)
	c.onSuccess(func() error {
		if err := c.env.Store.Remove(k.Name, tag); err != nil {
			return cnierr.IO("%s: %v", k.Plugin, err)
		}
		return nil
	})
	if rec.Version == 0 {
		k.adoptOnSuccess(c, rec)
	}
}

// adoptOnSuccess: rec was written before networks were recorded, so no
// member names it; once its removal has landed, its networks are
// recorded from the attachments' records that remain (and removed if
// none does).
func (k Kind[S]) adoptOnSuccess(c *Change, rec Record[S]) {
	if k.Network == nil {
		return
	}
	for br, fams := range k.bridges(rec) {
		nr := NetworkRecord{Version: NetworkVersion, Bridge: br, Backend: rec.Backend, Families: fams}
		if len(rec.Specs) > 0 {
			nr.Network = rec.Specs[0].Attachment().Network
		}
		c.onSuccess(func() error { c.adopt = append(c.adopt, adoption{k.Name, nr}); return nil })
	}
}

// bridges are the networks rec's specs depend on, with their families.
func (k Kind[S]) bridges(rec Record[S]) map[string][]netfilter.Family {
	out := map[string][]netfilter.Family{}
	for _, spec := range rec.Specs {
		if br := k.Network(spec); br != "" && !slices.Contains(out[br], spec.Family()) {
			out[br] = append(out[br], spec.Family())
		}
	}
	return out
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
	if rec.Version > RecordVersion {
		return rec, false, cnierr.IO("%s: record %s/%s.json is of format version %d, newer than this plugin's %d: upgrade the plugins and dnetctl together", k.Plugin, k.Name, tag, rec.Version, RecordVersion)
	}
	return rec, found, nil
}
