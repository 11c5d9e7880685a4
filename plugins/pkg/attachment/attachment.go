// Package attachment is the one way a plugin records, applies, checks and
// removes the netfilter state of an attachment (a container's interface on
// one network). Each kind of state (bridge's masquerade, portmap's host
// ports, and every later kind) is a Kind: the folder of its records and the
// backend calls that install, remove and check one family's spec.
//
// The order is always the same:
//   - Install writes the record before the rules it describes (intent
//     first), so a crash can leave a record without rules, which Remove
//     handles, but never rules without a record. A record already there is
//     from an earlier ADD of the same attachment: its rules go first.
//   - If applying fails, Install undoes every spec it tried, newest first
//     (the failing one too: a Del removes only the owner's state and
//     succeeds when there is none), then deletes the record.
//   - Remove deletes what the record says, through the backend it names,
//     then the record. Without a record (lost, or the state was never
//     recorded) it asks every available backend to find the owner's state
//     by its tag.
package attachment

import (
	"errors"

	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/state"
)

// Spec is one family's part of an attachment's state of one kind.
type Spec interface {
	Family() netfilter.Family
}

// Kind is one kind of netfilter state an attachment can own.
type Kind[S Spec] struct {
	Name   string // folder of the records in the state store
	Plugin string // names the plugin and option in error messages
	Add    func(netfilter.Backend, S) error
	Del    func(netfilter.Backend, S) error
	Check  func(netfilter.Backend, S) error
}

// Env is where attachments' state lives: the record store and the
// netfilter backends (netfilter.Host on a real machine).
type Env struct {
	Store    state.Store
	Backends Backends
}

// HostEnv is the Env of a plugin on a real machine: the records under
// stateDir (state.DefaultDir when empty) and the kernel's backends.
func HostEnv(stateDir string) Env {
	return Env{Store: state.New(stateDir), Backends: netfilter.Host{}}
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

// Install records rec for owner o, then applies it; on failure it leaves
// neither state nor record behind.
func (k Kind[S]) Install(env Env, o netfilter.Owner, rec Record[S]) (err error) {
	if err := k.replace(env, o, rec); err != nil {
		return err
	}
	var tried []applied[S]
	defer func() {
		if err == nil {
			return
		}
		for i := len(tried) - 1; i >= 0; i-- {
			_ = k.Del(tried[i].be, tried[i].spec)
		}
		_ = env.Store.Remove(k.Name, o.Tag())
	}()
	for _, spec := range rec.Specs {
		be, err := env.Backends.New(rec.Backend, spec.Family())
		if err != nil {
			return cnierr.Config("%s: %v", k.Plugin, err)
		}
		tried = append(tried, applied[S]{be, spec})
		if err := k.Add(be, spec); err != nil {
			return cnierr.Wrap(err, k.Plugin)
		}
	}
	return nil
}

type applied[S Spec] struct {
	be   netfilter.Backend
	spec S
}

// replace saves rec as o's record. A record already there is from an
// earlier ADD of the same attachment: what it installed goes first.
func (k Kind[S]) replace(env Env, o netfilter.Owner, rec Record[S]) error {
	prev, found, err := k.load(env, o)
	if err != nil {
		return err
	}
	if found {
		if err := k.removeRecorded(env, prev); err != nil {
			return err
		}
	}
	if err := env.Store.Save(k.Name, o.Tag(), rec); err != nil {
		return cnierr.IO("%s: %v", k.Plugin, err)
	}
	return nil
}

// Remove deletes o's state of this kind and its record. Without a record
// it looks for o's state by tag in each of families, through every
// available backend, asking each to delete byTag (a spec with only the
// owner and what the backend needs besides); no families means no state
// can exist without a record.
func (k Kind[S]) Remove(env Env, o netfilter.Owner, byTag S, families []netfilter.Family) error {
	rec, found, err := k.load(env, o)
	if err != nil {
		return err
	}
	if !found {
		if len(families) == 0 {
			return nil
		}
		for _, name := range env.Backends.Available() {
			if err := k.removeFrom(env, name, families, byTag); err != nil {
				return err
			}
		}
		return nil
	}
	if err := k.removeRecorded(env, rec); err != nil {
		return err
	}
	if err := env.Store.Remove(k.Name, o.Tag()); err != nil {
		return cnierr.IO("%s: %v", k.Plugin, err)
	}
	return nil
}

// removeRecorded deletes the state rec says was installed.
func (k Kind[S]) removeRecorded(env Env, rec Record[S]) error {
	for _, spec := range rec.Specs {
		if err := k.removeFrom(env, rec.Backend, []netfilter.Family{spec.Family()}, spec); err != nil {
			return err
		}
	}
	return nil
}

// removeFrom deletes spec through backend name in each family. A family
// whose tools are missing (IPv6 only) holds nothing to delete.
func (k Kind[S]) removeFrom(env Env, name string, families []netfilter.Family, spec S) error {
	for _, f := range families {
		be, err := env.Backends.New(name, f)
		if err != nil && f == netfilter.IPv6 {
			continue
		}
		if err != nil {
			return cnierr.Config("%s: %v", k.Plugin, err)
		}
		if err := k.Del(be, spec); err != nil {
			return cnierr.Wrap(err, k.Plugin)
		}
	}
	return nil
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
	var rec Record[S]
	found, err := env.Store.Load(k.Name, o.Tag(), &rec)
	if err != nil {
		return rec, false, cnierr.IO("%s: %v", k.Plugin, err)
	}
	return rec, found, nil
}

// Collect removes the state of this kind of every attachment of network
// whose owner tag is not in keep (CNI GC), through each record. A record
// that does not load is reported, never guessed at.
func (k Kind[S]) Collect(env Env, network string, keep map[string]bool, owner func(S) netfilter.Owner) error {
	tags, err := env.Store.List(k.Name)
	if err != nil {
		return cnierr.IO("%s: %v", k.Plugin, err)
	}
	var errs []error
	for _, tag := range tags {
		if keep[tag] {
			continue
		}
		var rec Record[S]
		if _, err := env.Store.Load(k.Name, tag, &rec); err != nil {
			errs = append(errs, err)
			continue
		}
		if len(rec.Specs) == 0 {
			continue
		}
		o := owner(rec.Specs[0])
		if o.Network != network || o.Tag() != tag {
			continue // another network's, or not a record of ours
		}
		if err := k.removeRecorded(env, rec); err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, env.Store.Remove(k.Name, tag))
	}
	if err := errors.Join(errs...); err != nil {
		return cnierr.IO("%s: GC: %v", k.Plugin, err)
	}
	return nil
}
