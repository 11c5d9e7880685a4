package bridgeplugin

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
	"github.com/dockernet/cni-plugins/plugins/pkg/filelock"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/procsys"
	"github.com/dockernet/cni-plugins/plugins/pkg/state"
)

// A gateway bridge needs the host to forward. When forwarding was off and
// the bridge turns it on, the host would from then on route between all
// its interfaces; Docker then drops whatever no container network takes
// part in, and so does the bridge (ForwardSpec.Guard, in the network's
// backend), unless the network sets ipForwardNoDrop. What it found is
// recorded, and when no attachment is left in the state directory
// (the last DEL, a failed ADD's undo, GC), forwarding is set back and
// the guard removed. Forwarding that was already on is never touched.
//
// Kubernetes pods are left out: the network model needs a node to forward
// between all its interfaces (a NodePort to a pod on another node), so the
// bridge turns forwarding on for them, drops nothing and never turns it off.

const (
	hostKind      = "host"       // records of the host, not of an attachment
	forwardingTag = "forwarding" // <stateDir>/host/forwarding.json
)

// forwardingRecord is what the bridge changed of the host's forwarding, by family.
type forwardingRecord struct {
	Families map[netfilter.Family]forwardingChange
}

type forwardingChange struct {
	Was     string // the value found: "0"
	Guard   string // the backend holding the guard; "" with ipForwardNoDrop
	Network string // the network whose ADD turned it on
}

// lockForwarding serialises the bridge processes that change the host's
// forwarding: a lock on the directory of its record, so nothing is left
// behind once the record is gone.
func lockForwarding(n *NetConf) (*filelock.Lock, error) {
	dir := filepath.Join(state.New(n.StateDir).Dir, hostKind)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, cnierr.IO("bridge: %v", err)
	}
	lk, err := filelock.Acquire(dir)
	if err != nil {
		return nil, cnierr.IO("bridge: %v", err)
	}
	return lk, nil
}

// enableForwarding turns forwarding on for the families of ips and sets
// n.guarded to those whose forwarding this bridge turned on with a guard.
// The attachment's link record is written before: while it exists, no
// release turns forwarding off under it.
func enableForwarding(n *NetConf, ips []*current.IPConfig) error {
	store := state.New(n.StateDir)
	var fams []netfilter.Family
	for _, f := range netfilter.BothFamilies {
		for _, ipc := range ips {
			if netfilter.FamilyOf(ipc.Address.IP) == f {
				fams = append(fams, f)
				break
			}
		}
	}
	// The common case, without the lock: no record of ours, and forwarding
	// on. A release sets forwarding back before it drops the record, so
	// whoever finds no record and forwarding on finds it on for good.
	var rec forwardingRecord
	found, err := store.Load(hostKind, forwardingTag, &rec)
	if err != nil {
		return cnierr.IO("bridge: %v", err)
	}
	if !found && allOn(fams) {
		return nil
	}
	lk, err := lockForwarding(n)
	if err != nil {
		return err
	}
	defer lk.Release()
	rec = forwardingRecord{}
	if _, err := store.Load(hostKind, forwardingTag, &rec); err != nil {
		return cnierr.IO("bridge: %v", err)
	}
	changed := false
	for _, f := range fams {
		was := procsys.Get(f.ForwardingKey())
		if was != "1" {
			if err := procsys.Set(f.ForwardingKey(), "1"); err != nil {
				return cnierr.Wrap(err, "bridge: enable forwarding: set "+f.ForwardingKey())
			}
			if n.kubernetesPod {
				fmt.Fprintf(os.Stderr, "bridge: %s was %s: turned it on for Kubernetes pod traffic; the node forwards between all its interfaces from now on, as Kubernetes needs\n", sysctlName(f), was)
				continue
			}
			if rec.Families == nil {
				rec.Families = map[netfilter.Family]forwardingChange{}
			}
			c := forwardingChange{Was: was, Network: n.Name}
			if !n.IPForwardNoDrop {
				c.Guard = n.backend()
			}
			rec.Families[f], changed = c, true
			fmt.Fprintln(os.Stderr, forwardingLine(n, f, c))
		}
	}
	n.guarded = rec.guards(n.backend())
	if changed {
		if err := store.Save(hostKind, forwardingTag, rec); err != nil {
			return cnierr.IO("bridge: %v", err)
		}
	}
	return nil
}

// recordedGuards are the families the record says this network's backend
// guards: what CHECK verifies.
func recordedGuards(n *NetConf) []netfilter.Family {
	var rec forwardingRecord
	if found, err := state.New(n.StateDir).Load(hostKind, forwardingTag, &rec); err != nil || !found {
		return nil
	}
	return rec.guards(n.backend())
}

// guards are the families whose guard backend holds: only its networks'
// traffic is what the guard lets through.
func (r forwardingRecord) guards(backend string) []netfilter.Family {
	var out []netfilter.Family
	for f, c := range r.Families {
		if c.Guard != "" && strings.EqualFold(c.Guard, backend) {
			out = append(out, f)
		}
	}
	return out
}

func allOn(fams []netfilter.Family) bool {
	for _, f := range fams {
		if procsys.Get(f.ForwardingKey()) != "1" {
			return false
		}
	}
	return true
}

func sysctlName(f netfilter.Family) string { return strings.ReplaceAll(f.ForwardingKey(), "/", ".") }

func forwardingLine(n *NetConf, f netfilter.Family, c forwardingChange) string {
	if c.Guard == "" {
		return fmt.Sprintf("bridge: %s was %s: turned it on for network %s; ipForwardNoDrop is set, so the host forwards between all its interfaces until the last attachment is deleted", sysctlName(f), c.Was, n.Name)
	}
	return fmt.Sprintf("bridge: %s was %s: turned it on for network %s, and drop forwarded traffic that no container network takes part in, as Docker does (set ipForwardNoDrop to forward everything); both are undone when the last attachment is deleted", sysctlName(f), c.Was, n.Name)
}

// releaseForwarding gives forwarding back as the bridge found it once no
// attachment is left in the state directory: the guard removed, then the
// sysctl set back, then the record dropped (in that order: see enableForwarding).
func releaseForwarding(n *NetConf) error {
	store := state.New(n.StateDir)
	if _, err := os.Stat(filepath.Join(store.Dir, hostKind, forwardingTag+".json")); err != nil {
		return nil // the common case: nothing of ours to give back
	}
	lk, err := lockForwarding(n)
	if err != nil {
		return err
	}
	defer lk.Release()
	var rec forwardingRecord
	found, err := store.Load(hostKind, forwardingTag, &rec)
	if err != nil || !found {
		return err
	}
	if busy, err := anyLinkRecord(store); err != nil || busy {
		return err
	}
	backends := attachment.HostEnv(n.StateDir).Backends
	var tx netfilter.Txn
	for f, c := range rec.Families {
		if c.Guard == "" {
			continue
		}
		be, err := backends.New(c.Guard, f)
		if err != nil {
			return cnierr.Config("bridge: remove the forwarding guard: %v", err)
		}
		be.DelForwardGuard(&tx)
	}
	if err := tx.Commit(); err != nil {
		return cnierr.Wrap(err, "bridge: remove the forwarding guard")
	}
	var errs []error
	for f, c := range rec.Families {
		if procsys.Get(f.ForwardingKey()) == "1" {
			errs = append(errs, procsys.Set(f.ForwardingKey(), c.Was))
		}
		fmt.Fprintf(os.Stderr, "bridge: no attachment left: set %s back to %s\n", sysctlName(f), c.Was)
	}
	if err := errors.Join(errs...); err != nil {
		return cnierr.Wrap(err, "bridge: set forwarding back")
	}
	if err := store.Remove(hostKind, forwardingTag); err != nil {
		return cnierr.IO("bridge: %v", err)
	}
	return nil
}

// anyLinkRecord reports whether some attachment, of any network, has its
// link record: an ADD under way or done and not yet deleted. It reads the
// directory only until the first record.
func anyLinkRecord(store state.Store) (bool, error) {
	d, err := os.Open(filepath.Join(store.Dir, attachment.LinkKind))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, cnierr.IO("bridge: %v", err)
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
