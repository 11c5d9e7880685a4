package ipt

import (
	"fmt"
	"strconv"

	"github.com/dockernet/cni-plugins/plugins/pkg/filelock"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// gatewayMode routed publishes a container port on the container's own
// address: no DNAT and no host port, only a RETURN per mapping, first in
// the network's direct-routing chain (mangle DNET-GUARD), tagged with its
// owner, so that the network's drop after it spares that port.
//
//	mangle DNET-GUARD  -d 172.18.0.2/32 -p tcp -m tcp --dport 80 -m comment --comment "dnet:<owner>" -j RETURN

// routedRules are spec's RETURN rules, as iptables-save prints them.
func routedRules(spec netfilter.PortMapSpec, f netfilter.Family) [][]string {
	var out [][]string
	seen := map[string]bool{}
	for _, m := range spec.Mappings {
		if _, ok := netfilter.HostIPFor(m, f); !ok {
			continue
		}
		r := []string{"-d", spec.ContainerIP.String() + f.HostPrefix(), "-p", m.Protocol, "-m", m.Protocol,
			"--dport", strconv.Itoa(m.ContainerPort), "-m", "comment", "--comment", spec.Owner.Comment(), "-j", "RETURN"}
		if key := joinArgs(r); !seen[key] {
			seen[key] = true
			out = append(out, r)
		}
	}
	return out
}

// addRoutedPorts replaces the owner's RETURNs with spec's.
func (b *Backend) addRoutedPorts(spec netfilter.PortMapSpec) error {
	if !b.hasChain("mangle", ChainGuard) {
		return fmt.Errorf("%s: gatewayMode routed: chain mangle %s is missing: the bridge of network %s installs it (with the iptables backend)", b.family, ChainGuard, spec.Owner.Network)
	}
	return b.editTable("mangle", nil, func(txn *ruleTxn, snap *Snapshot) error {
		for _, r := range snap.Owned(ChainGuard, spec.Owner) {
			txn.deleteSaved(ChainGuard, r)
		}
		for _, r := range routedRules(spec, b.family) {
			txn.insert(ChainGuard, r...)
		}
		return nil
	})
}

// delRoutedPorts deletes the owner's RETURNs, if any.
func (b *Backend) delRoutedPorts(o netfilter.Owner) error {
	if !b.hasChain("mangle", ChainGuard) {
		return nil
	}
	return b.editTable("mangle", nil, func(txn *ruleTxn, snap *Snapshot) error {
		for _, r := range snap.Owned(ChainGuard, o) {
			txn.deleteSaved(ChainGuard, r)
		}
		return nil
	})
}

func (b *Backend) checkRoutedPorts(spec netfilter.PortMapSpec) error {
	lk, err := filelock.Acquire(b.lockPath)
	if err != nil {
		return err
	}
	defer lk.Release()
	for _, r := range routedRules(spec, b.family) {
		if b.checkAll([]filterRule{{chain: ChainGuard, table: "mangle", args: r}}) != nil {
			return fmt.Errorf("%s: mangle rule %q is missing from chain %s", b.family, joinArgs(r), ChainGuard)
		}
	}
	return nil
}
