package attachment

import (
	"encoding/json"
	"errors"
	"net"
	"slices"
	"strings"

	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// AnyKind is a Kind whatever its spec type: how GC, dnetctl and restore
// iterate every kind of state the same way.
type AnyKind interface {
	Folder() string
	// Stored loads the record of tag, if there is one.
	Stored(env Env, tag string) (Stored, bool, error)
	// RecordNetwork is the network a record's content names, "" for
	// none (a partial write).
	RecordNetwork(data []byte) string
}

// Stored is one record of any kind.
type Stored interface {
	Kind() string
	Backend() string
	Owner() netfilter.Owner // that of its first spec: the attachment
	Addresses() []net.IP
	Ports() []netfilter.PortMapping
	// Networks are the bridges whose network's own state the record's
	// state depends on.
	Networks() []string
	// Intact reports whether the record belongs where it is stored:
	// under its owner's tag, with at least one spec.
	Intact(tag string) bool
	Verify(env Env) error
	Reapply(c *Change)
	Reinstall(c *Change)
	Remove(c *Change)
}

// Folder is where the kind's records are stored.
func (k Kind[S]) Folder() string { return k.Name }

// RecordNetwork reads the network of the record's first spec.
func (k Kind[S]) RecordNetwork(data []byte) string {
	var rec Record[S]
	if json.Unmarshal(data, &rec) != nil || len(rec.Specs) == 0 {
		return ""
	}
	return rec.Specs[0].Attachment().Network
}

// Stored loads the record of tag as a Stored.
func (k Kind[S]) Stored(env Env, tag string) (Stored, bool, error) {
	rec, found, err := k.loadTag(env, tag)
	if err != nil || !found {
		return nil, found, err
	}
	return stored[S]{k, tag, rec}, true, nil
}

type stored[S Spec] struct {
	k   Kind[S]
	tag string
	rec Record[S]
}

func (s stored[S]) Kind() string    { return s.k.Name }
func (s stored[S]) Backend() string { return s.rec.Backend }

func (s stored[S]) Owner() netfilter.Owner {
	if len(s.rec.Specs) == 0 {
		return netfilter.Owner{}
	}
	return s.rec.Specs[0].Attachment()
}

func (s stored[S]) Intact(tag string) bool {
	return len(s.rec.Specs) > 0 && s.Owner().Tag() == tag
}

func (s stored[S]) Addresses() []net.IP {
	var out []net.IP
	for _, spec := range s.rec.Specs {
		if ip := spec.Address(); ip != nil && !slices.ContainsFunc(out, ip.Equal) {
			out = append(out, ip)
		}
	}
	return out
}

func (s stored[S]) Ports() []netfilter.PortMapping {
	var out []netfilter.PortMapping
	for _, spec := range s.rec.Specs {
		out = append(out, spec.Ports()...)
	}
	return out
}

func (s stored[S]) Networks() []string {
	if s.k.Network == nil {
		return nil
	}
	var out []string
	for br := range s.k.bridges(s.rec) {
		out = append(out, br)
	}
	return out
}

func (s stored[S]) Verify(env Env) error { return s.k.Verify(env, s.rec) }
func (s stored[S]) Reapply(c *Change)    { s.k.Reapply(c, s.rec) }
func (s stored[S]) Reinstall(c *Change)  { s.k.Reinstall(c, s.rec) }
func (s stored[S]) Remove(c *Change)     { s.k.removeRecord(c, s.tag, s.rec) }

// SpecsOf returns st's specs if it is a record of kind k.
func SpecsOf[S Spec](k Kind[S], st Stored) []S {
	if s, ok := st.(stored[S]); ok && s.k.Name == k.Name {
		return s.rec.Specs
	}
	return nil
}

// Records returns every record of this kind, by owner tag.
func (k Kind[S]) Records(env Env) (map[string]Record[S], error) {
	tags, err := env.Store.List(k.Name)
	if err != nil {
		return nil, cnierr.IO("%s: %v", k.Plugin, err)
	}
	out := make(map[string]Record[S], len(tags))
	for _, tag := range tags {
		rec, _, err := k.loadTag(env, tag)
		if err != nil {
			return nil, err
		}
		out[tag] = rec
	}
	return out, nil
}

// All loads every record of every kind, by owner tag. A record that does
// not load is reported in the error, never skipped in silence; the rest
// are returned all the same.
func All(env Env) (map[string][]Stored, error) {
	out := map[string][]Stored{}
	var errs []error
	for _, k := range Kinds {
		tags, err := env.Store.List(k.Folder())
		if err != nil {
			errs = append(errs, cnierr.IO("%s records: %v", k.Folder(), err))
			continue
		}
		for _, tag := range tags {
			st, found, err := k.Stored(env, tag)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if found {
				out[tag] = append(out[tag], st)
			}
		}
	}
	return out, errors.Join(errs...)
}

// Reapply queues again what rec says, through the backend it names,
// after a firewall flush or reload. A spec whose state is complete stays
// as it is; one that is partly or wholly gone is removed (what is left of
// it) and added again, so nothing is doubled.
func (k Kind[S]) Reapply(c *Change, rec Record[S]) {
	for _, spec := range rec.Specs {
		be, err := c.env.Backends.New(rec.Backend, spec.Family())
		if err != nil {
			c.fail(cnierr.Config("%s: %v", k.Plugin, err))
			return
		}
		if k.Check(be, spec) == nil {
			continue
		}
		k.Del(be, &c.tx, spec)
		k.Add(be, &c.tx, spec)
		k.whenLanded(c, be, spec)
	}
}

// Reinstall queues what rec says again without looking first: after a
// flush nothing of it is there, and checking each spec would cost a dump
// each. nftables adds are idempotent; iptables' masquerade appends to a
// shared chain on its fast path, which cannot see a rule already there,
// so an iptables record's state is removed first (a restore killed half
// way must not leave two copies). Nothing is undone if the change fails:
// what was there before stays.
func (k Kind[S]) Reinstall(c *Change, rec Record[S]) {
	if !strings.EqualFold(rec.Backend, netfilter.NameNFTables) {
		k.queueRemoval(c, rec.Backend, rec.Specs, false)
	}
	k.queueAdds(c, rec, false)
}

// Verify checks that rec's state is in place, through the backend it names.
func (k Kind[S]) Verify(env Env, rec Record[S]) error {
	for _, spec := range rec.Specs {
		be, err := env.Backends.New(rec.Backend, spec.Family())
		if err != nil {
			return cnierr.Config("%s: %v", k.Plugin, err)
		}
		if err := k.Check(be, spec); err != nil {
			return cnierr.Drift("%s: %v", k.Plugin, err)
		}
	}
	return nil
}
