package attachment

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
	"github.com/dockernet/cni-plugins/plugins/pkg/filelock"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/procsys"
)

// The host's own state: what a bridge changed of the host's forwarding
// (the sysctl, and the guard that drops what no network of ours takes
// part in), and what DEL learnt of the host's reaping (the bridge's
// reaper.go). It goes when no attachment of any network is left: at the
// last DEL, a failed ADD's undo, a GC or a collection (ReleaseHost).
//
//	<stateDir>/host/forwarding.json
//	<stateDir>/host/deleter.json    a DEL's child, until a later DEL has seen it reaped or not
//	<stateDir>/host/reaper.json     the mark: a DEL's child was seen reaped
//	<stateDir>/host/noreaper.json   the mark: nothing here reaps orphans

const (
	HostFolder    = "host"       // records of the host, not of an attachment or a network
	ForwardingTag = "forwarding" // <stateDir>/host/forwarding.json
	DeleterTag    = "deleter"    // <stateDir>/host/deleter.json
	ReaperTag     = "reaper"     // <stateDir>/host/reaper.json
	NoReaperTag   = "noreaper"   // <stateDir>/host/noreaper.json
)

// hostNotes are the host's records that need no undo: they are dropped.
var hostNotes = []string{DeleterTag, ReaperTag, NoReaperTag}

// Reaps reports whether this host's records say it reaps orphaned
// processes: a DEL's child was seen reaped, and none seen a zombie.
func (env Env) Reaps() bool {
	return env.Store.Has(HostFolder, ReaperTag) && !env.Store.Has(HostFolder, NoReaperTag)
}

// ForwardingVersion is the version of the forwarding record's format.
const ForwardingVersion = 1

// ForwardingRecord is what the bridge changed of the host's forwarding,
// by family.
type ForwardingRecord struct {
	Version  int `json:",omitempty"` // none: written before versions
	Families map[netfilter.Family]ForwardingChange
}

// ForwardingChange is one family's.
type ForwardingChange struct {
	Was     string // the value found: "0"
	Guard   string // the backend holding the guard; "" with ipForwardNoDrop
	Network string // the network whose ADD turned it on
}

// Guards are the families whose guard backend holds.
func (r ForwardingRecord) Guards(backend string) []netfilter.Family {
	var out []netfilter.Family
	for f, c := range r.Families {
		if c.Guard != "" && strings.EqualFold(c.Guard, backend) {
			out = append(out, f)
		}
	}
	return out
}

// LockHost serialises the processes that change the host's forwarding: a
// lock on the directory of its record.
func (env Env) LockHost() (*filelock.Lock, error) {
	dir := filepath.Join(env.Store.Dir, HostFolder)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, cnierr.IO("%v", err)
	}
	lk, err := filelock.Acquire(dir)
	if err != nil {
		return nil, cnierr.IO("%v", err)
	}
	return lk, nil
}

// Forwarding loads the forwarding record, if there is one.
func (env Env) Forwarding() (ForwardingRecord, bool, error) {
	var rec ForwardingRecord
	found, err := env.Store.Load(HostFolder, ForwardingTag, &rec)
	return rec, found, err
}

// ReleaseHost gives the host's state back once no attachment is left in
// the state directory: forwarding as the bridge found it (the guard
// removed, then the sysctls set back, then the record dropped: an ADD
// that finds no record and forwarding on finds it on for good), then the
// notes. It returns what it set back, for the operator.
func (env Env) ReleaseHost() ([]string, error) {
	held, err := env.Store.List(HostFolder)
	if err != nil || len(held) == 0 {
		return nil, err // the common case: nothing of ours to give back
	}
	if slices.Contains(held, ForwardingTag) {
		lk, err := env.LockHost()
		if err != nil {
			return nil, err
		}
		defer lk.Release()
	}
	if busy, err := env.AnyLink(); err != nil || busy {
		return nil, err
	}
	done, err := env.releaseForwarding()
	if err != nil {
		return nil, err
	}
	for _, tag := range hostNotes {
		if err := env.Store.Remove(HostFolder, tag); err != nil {
			return done, cnierr.IO("%v", err)
		}
	}
	return done, nil
}

// releaseForwarding undoes the forwarding record's changes and drops it;
// the caller holds the host's lock and has seen no attachment left.
func (env Env) releaseForwarding() ([]string, error) {
	rec, found, err := env.Forwarding()
	if err != nil || !found {
		return nil, err
	}
	var tx netfilter.Txn
	for f, c := range rec.Families {
		if c.Guard == "" {
			continue
		}
		be, err := env.Backends.New(c.Guard, f)
		if err != nil {
			return nil, cnierr.Config("remove the forwarding guard: %v", err)
		}
		be.DelForwardGuard(&tx)
	}
	if err := tx.Commit(); err != nil {
		return nil, cnierr.Wrap(err, "remove the forwarding guard")
	}
	var errs []error
	var done []string
	for f, c := range rec.Families {
		if procsys.Get(f.ForwardingKey()) == "1" {
			errs = append(errs, procsys.Set(f.ForwardingKey(), c.Was))
		}
		done = append(done, fmt.Sprintf("%s set back to %s", strings.ReplaceAll(f.ForwardingKey(), "/", "."), c.Was))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, cnierr.Wrap(err, "set forwarding back")
	}
	if err := env.Store.Remove(HostFolder, ForwardingTag); err != nil {
		return nil, cnierr.IO("%v", err)
	}
	return done, nil
}

// AnyLink reports whether some attachment, of any network, has its link
// record: an ADD under way or done and not yet deleted. It reads the
// directory only until the first record.
func (env Env) AnyLink() (bool, error) {
	d, err := os.Open(filepath.Join(env.Store.Dir, LinkKind))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, cnierr.IO("%v", err)
	}
	defer d.Close()
	for {
		names, err := d.Readdirnames(64)
		for _, name := range names {
			if strings.HasSuffix(name, ".json") {
				return true, nil
			}
		}
		if err != nil {
			return false, nil // io.EOF: none
		}
	}
}
