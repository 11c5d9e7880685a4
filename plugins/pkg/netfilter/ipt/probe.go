package ipt

import (
	"fmt"

	"github.com/dockernet/cni-plugins/plugins/pkg/filelock"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// ProbeBase checks, in one iptables-restore --test, the jumps from the
// built-in chains to ours that kinds rely on: what a flush (iptables -F,
// -t nat -F) or a reload of a saved ruleset removes first.
func (b *Backend) ProbeBase(kinds netfilter.BaseKinds) error {
	// The jumps alone (no shared mark rule: markBit -1).
	nat := natBase{markBit: -1}
	if kinds.Ports {
		nat.jumps = append(nat.jumps, portmapBase(netfilter.PortMapSpec{}).jumps...)
	}
	if kinds.Masquerade {
		nat.jumps = append(nat.jumps, masqBase().jumps...)
	}
	var rules []filterRule
	for _, r := range nat.rules() {
		rules = append(rules, filterRule{chain: r.chain, args: r.args, table: "nat"})
	}
	// iptables-nft: the jumps read over netlink, no process, when found
	// (the agent probes every second); otherwise the restore says.
	if b.nftBacked && (len(nat.jumps) == 0 || nftHasBase(b.family, nat)) && (!kinds.Forward || nftJumps(b.family, "filter", "FORWARD", ChainForward)) {
		return nil
	}
	if kinds.Forward {
		rules = append(rules, forwardBase(b.family, netfilter.ForwardSpec{}, false)[0])
	}
	if len(rules) == 0 {
		return nil
	}
	lk, err := filelock.Acquire(b.lockPath)
	if err != nil {
		return err
	}
	defer lk.Release()
	if err := b.checkAll(rules); err != nil {
		return fmt.Errorf("%s %s: a jump to our chains is gone", b.family, b.restore)
	}
	return nil
}
