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
	var rules []filterRule
	var nat natBase
	add := func(nb natBase) {
		nat.jumps = append(nat.jumps, nb.jumps...)
		for _, r := range nb.rules() {
			if r.args[len(r.args)-2] == "-j" && r.chain != ChainPostrouting {
				rules = append(rules, filterRule{chain: r.chain, args: r.args, table: "nat"})
			}
		}
	}
	if kinds.Ports {
		add(portmapBase(netfilter.PortMapSpec{}))
	}
	if kinds.Masquerade {
		add(masqBase())
	}
	// iptables-nft: the jumps read over netlink, no process, when found
	// (the agent probes every second); otherwise the restore says.
	nat.markBit = -1
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
