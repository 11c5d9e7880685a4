// Package hostports keeps which attachment publishes which host port, per
// address family and protocol, so that portmap refuses an overlapping
// mapping with either backend: a mapping on every address (no hostIP, or
// 0.0.0.0 / ::) overlaps every other mapping of the same port, family and
// protocol, and one on a specific address overlaps the same address.
// Different protocols, families or specific addresses coexist, as
// Kubernetes' hostPort rules and Docker's port allocator want.
//
// Layout, under the state directory:
//
//	hostports/<family>-<proto>-<port>.json   the claims on that port: [{Tag, Owner, HostIP}]
//	hostports/owners/<tag>.json              an attachment's network and the ports it claims
//	hostports/.lock                          serialises every change
//
// An attachment's claims are replaced as a whole by its next ADD and
// released by its DEL, both through its owner file, so neither reads more
// than the ports involved.
package hostports

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/dockernet/cni-plugins/plugins/pkg/filelock"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/state"
)

// Key is one port of one protocol in one family.
type Key struct {
	Family netfilter.Family
	Proto  string
	Port   int
}

func (k Key) file() string { return fmt.Sprintf("%d-%s-%d", int(k.Family), k.Proto, k.Port) }

// ownerFile lists what one attachment claims.
type ownerFile struct {
	Network string
	Keys    []Key
}

// Claim is one attachment's use of a Key.
type Claim struct {
	Tag    string // the owner's tag
	Owner  string // the owner's comment, for messages
	HostIP string // "" for every address of the family
}

// Ledger is the claims under one state directory.
type Ledger struct{ store state.Store }

// New returns the ledger kept in the state directory dir (state.DefaultDir when empty).
func New(dir string) Ledger {
	return Ledger{store: state.New(filepath.Join(state.New(dir).Dir, "hostports"))}
}

// ConflictError is a mapping that overlaps another attachment's.
type ConflictError struct {
	Want, Have Claim
	Key        Key
}

func (e *ConflictError) Error() string {
	where := func(ip string, f netfilter.Family) string {
		if ip != "" {
			return ip
		}
		if f == netfilter.IPv6 {
			return "[::]"
		}
		return "0.0.0.0"
	}
	want, have := where(e.Want.HostIP, e.Key.Family), where(e.Have.HostIP, e.Key.Family)
	if want == have {
		return fmt.Sprintf("host port %d/%s on %s is already published by %s: unpublish it there or pick another hostPort",
			e.Key.Port, e.Key.Proto, want, netfilter.DescribeOwner(e.Have.Owner))
	}
	return fmt.Sprintf("host port %d/%s on %s overlaps %d/%s on %s, already published by %s: a mapping on every address overlaps every other mapping of its port and protocol; pick another hostPort, or give both mappings distinct specific hostIPs",
		e.Key.Port, e.Key.Proto, want, e.Key.Port, e.Key.Proto, have, netfilter.DescribeOwner(e.Have.Owner))
}

// overlaps reports whether two claims on one key exclude each other.
func overlaps(a, b Claim) bool { return a.HostIP == "" || b.HostIP == "" || a.HostIP == b.HostIP }

// Wanted is what owner o claims in family f for mappings: one claim per
// mapping that applies to f.
func Wanted(o netfilter.Owner, f netfilter.Family, mappings []netfilter.PortMapping) map[Key][]Claim {
	out := map[Key][]Claim{}
	for _, m := range mappings {
		ip, ok := netfilter.HostIPFor(m, f)
		if !ok {
			continue
		}
		k := Key{f, m.Protocol, m.HostPort}
		c := Claim{Tag: o.Tag(), Owner: o.Comment(), HostIP: ip}
		if !slices.Contains(out[k], c) {
			out[k] = append(out[k], c)
		}
	}
	return out
}

// Claim replaces o's claims with want, or fails with a *ConflictError
// (changing nothing) when one overlaps another attachment's.
func (l Ledger) Claim(o netfilter.Owner, want map[Key][]Claim) error {
	lk, err := filelock.Acquire(filepath.Join(l.store.Dir, ".lock"))
	if err != nil {
		return err
	}
	defer lk.Release()
	for k, claims := range want {
		have, err := l.load(k)
		if err != nil {
			return err
		}
		for _, h := range have {
			if h.Tag == o.Tag() {
				continue
			}
			for _, w := range claims {
				if overlaps(w, h) {
					return &ConflictError{Want: w, Have: h, Key: k}
				}
			}
		}
	}
	if err := l.release(o); err != nil {
		return err
	}
	if len(want) == 0 {
		return nil
	}
	keys := make([]Key, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	// Intent first: the owner file names every key before any claim is
	// written, so a crash in between leaves nothing Release cannot find.
	if err := l.store.Save("owners", o.Tag(), ownerFile{Network: o.Network, Keys: keys}); err != nil {
		return err
	}
	for k, claims := range want {
		have, err := l.load(k)
		if err != nil {
			return err
		}
		if err := l.store.Save("", k.file(), append(have, claims...)); err != nil {
			return err
		}
	}
	return nil
}

// Release drops every claim of o.
func (l Ledger) Release(o netfilter.Owner) error {
	// Most DELs are of attachments that publish nothing: no owner file, no lock.
	if _, err := os.Stat(filepath.Join(l.store.Dir, "owners", o.Tag()+".json")); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	lk, err := filelock.Acquire(filepath.Join(l.store.Dir, ".lock"))
	if err != nil {
		return err
	}
	defer lk.Release()
	return l.release(o)
}

func (l Ledger) release(o netfilter.Owner) error { return l.releaseTag(o.Tag()) }

func (l Ledger) releaseTag(tag string) error {
	var of ownerFile
	found, err := l.store.Load("owners", tag, &of)
	if err != nil || !found {
		return err
	}
	for _, k := range of.Keys {
		have, err := l.load(k)
		if err != nil {
			return err
		}
		kept := slices.DeleteFunc(have, func(c Claim) bool { return c.Tag == tag })
		if len(kept) == 0 {
			err = l.store.Remove("", k.file())
		} else {
			err = l.store.Save("", k.file(), kept)
		}
		if err != nil {
			return err
		}
	}
	return l.store.Remove("owners", tag)
}

// GC drops the claims of every attachment of network whose tag is not in
// keep. An owner file that does not load is reported and left as it is,
// as every record is (attachment.Collect); the others are collected.
func (l Ledger) GC(network string, keep map[string]bool) error {
	lk, err := filelock.Acquire(filepath.Join(l.store.Dir, ".lock"))
	if err != nil {
		return err
	}
	defer lk.Release()
	tags, err := l.store.List("owners")
	if err != nil {
		return err
	}
	var errs []error
	for _, tag := range tags {
		if keep[tag] {
			continue
		}
		var of ownerFile
		if _, err := l.store.Load("owners", tag, &of); err != nil {
			errs = append(errs, err)
			continue
		}
		if of.Network != network {
			continue
		}
		errs = append(errs, l.releaseTag(tag))
	}
	return errors.Join(errs...)
}

func (l Ledger) load(k Key) ([]Claim, error) {
	var have []Claim
	if _, err := l.store.Load("", k.file(), &have); err != nil {
		return nil, err
	}
	return have, nil
}
