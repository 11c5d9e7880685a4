package bridgeplugin

import (
	"fmt"
	"os"
	"strings"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/procsys"
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

// enableForwarding turns forwarding on for the families of ips and sets
// n.guarded to those whose forwarding this bridge turned on with a guard.
// The attachment's link record is written before: while it exists, no
// release turns forwarding off under it.
func enableForwarding(n *NetConf, ips []*current.IPConfig) error {
	env := attachment.HostEnv(n.StateDir)
	store := env.Store
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
	_, found, err := env.Forwarding()
	if err != nil {
		return cnierr.IO("bridge: %v", err)
	}
	if !found && allOn(fams) {
		return nil
	}
	lk, err := env.LockHost()
	if err != nil {
		return cnierr.Wrap(err, "bridge")
	}
	defer lk.Release()
	rec, _, err := env.Forwarding()
	if err != nil {
		return cnierr.IO("bridge: %v", err)
	}
	// What will change is recorded before it changes (intent first): a
	// crash after the sysctl is set must leave the record that sets it
	// back.
	var turnOn []netfilter.Family
	was := map[netfilter.Family]string{}
	for _, f := range fams {
		if was[f] = procsys.Get(f.ForwardingKey()); was[f] == "1" {
			continue
		}
		turnOn = append(turnOn, f)
		if n.kubernetesPod {
			continue // Kubernetes needs it on for good: nothing to give back
		}
		if rec.Families == nil {
			rec.Families = map[netfilter.Family]attachment.ForwardingChange{}
		}
		if _, held := rec.Families[f]; held {
			continue // turned on before, by another ADD, and recorded with what it found
		}
		c := attachment.ForwardingChange{Was: was[f], Network: n.Name}
		if !n.IPForwardNoDrop {
			c.Guard = n.backend()
		}
		rec.Families[f] = c
	}
	n.guarded = rec.Guards(n.backend())
	if len(turnOn) > 0 && !n.kubernetesPod {
		rec.Version = attachment.ForwardingVersion
		if err := store.Save(attachment.HostFolder, attachment.ForwardingTag, rec); err != nil {
			return cnierr.IO("bridge: %v", err)
		}
	}
	for _, f := range turnOn {
		if err := procsys.Set(f.ForwardingKey(), "1"); err != nil {
			return cnierr.Wrap(err, "bridge: enable forwarding: set "+f.ForwardingKey())
		}
		if n.kubernetesPod {
			fmt.Fprintf(os.Stderr, "bridge: %s was %s: turned it on for Kubernetes pod traffic; the node forwards between all its interfaces from now on, as Kubernetes needs\n", sysctlName(f), was[f])
			continue
		}
		fmt.Fprintln(os.Stderr, forwardingLine(n, f, rec.Families[f]))
	}
	return nil
}

// recordedGuards are the families the record says this network's backend
// guards: what CHECK verifies.
func recordedGuards(n *NetConf) []netfilter.Family {
	rec, found, err := attachment.HostEnv(n.StateDir).Forwarding()
	if err != nil || !found {
		return nil
	}
	return rec.Guards(n.backend())
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

func forwardingLine(n *NetConf, f netfilter.Family, c attachment.ForwardingChange) string {
	if c.Guard == "" {
		return fmt.Sprintf("bridge: %s was %s: turned it on for network %s; ipForwardNoDrop is set, so the host forwards between all its interfaces until the last attachment is deleted", sysctlName(f), c.Was, n.Name)
	}
	return fmt.Sprintf("bridge: %s was %s: turned it on for network %s, and drop forwarded traffic that no container network takes part in, as Docker does (set ipForwardNoDrop to forward everything); both are undone when the last attachment is deleted", sysctlName(f), c.Was, n.Name)
}

// releaseHost gives the host's state back (forwarding as the bridge found
// it, the reaper's note and mark) once no attachment is left in the state
// directory (attachment.ReleaseHost).
func releaseHost(n *NetConf) error {
	done, err := attachment.HostEnv(n.StateDir).ReleaseHost()
	for _, d := range done {
		fmt.Fprintf(os.Stderr, "bridge: no attachment left: %s\n", d)
	}
	if err != nil {
		return cnierr.Wrap(err, "bridge")
	}
	return nil
}
