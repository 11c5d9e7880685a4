package ipt

import (
	"fmt"
	"strings"

	"github.com/dockernet/cni-plugins/plugins/pkg/filelock"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// ProbeBase checks, in one iptables-restore --test, every rule kinds
// rely on outside the attachments' own: the jumps from the built-in
// chains to ours (nat, filter, mangle), the raw loopback drop, and each
// network's rules (its accepts, isolation, direct-routing drop, the
// forwarding guard); and, where ports have allowlists, the nftables
// table that holds them. A flush of any one table or chain (iptables -F,
// -t mangle -F PREROUTING, nft delete table ip dnet) or a reload of a
// saved ruleset removes some of these first. With iptables-nft and
// kinds not Thorough, the nat and FORWARD jumps read over netlink (no
// process) stand for the rest: the agent's idle poll, every second,
// while any change wakes it for a thorough look.
func (b *Backend) ProbeBase(kinds netfilter.BaseKinds) error {
	if kinds.Sources && b.Sources != nil {
		if p, ok := b.Sources.(netfilter.BaseProber); ok {
			if err := p.ProbeBase(netfilter.BaseKinds{}); err != nil {
				return fmt.Errorf("%s: the table of the allowlists: %v", b.family, err)
			}
		}
	}
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
	if !kinds.Thorough && b.nftBacked && (len(nat.jumps) == 0 || nftHasBase(b.family, nat)) && (!kinds.Forward || nftJumps(b.family, "filter", "FORWARD", ChainForward)) {
		return nil
	}
	if kinds.Ports {
		rules = append(rules, loopbackDrop(b.family))
	}
	if kinds.Forward {
		rules = append(rules, forwardBase(b.family, netfilter.ForwardSpec{}, false)[0])
	}
	for _, spec := range kinds.Networks {
		rules = append(rules, forwardWant(b.family, spec, true)...)
	}
	rules = uniqueRules(rules)
	if len(rules) == 0 {
		return nil
	}
	lk, err := filelock.Acquire(b.lockPath)
	if err != nil {
		return err
	}
	defer lk.Release()
	if err := b.checkAll(rules); err != nil {
		return fmt.Errorf("%s %s: a rule of ours is gone (%s)", b.family, b.restore, tablesOf(rules))
	}
	return nil
}

// uniqueRules keeps the first of each rule: networks share base rules.
func uniqueRules(rules []filterRule) []filterRule {
	seen := map[string]bool{}
	var out []filterRule
	for _, r := range rules {
		key := r.in() + " " + r.chain + " " + strings.Join(r.args, " ")
		if !seen[key] {
			seen[key] = true
			out = append(out, r)
		}
	}
	return out
}

// tablesOf names the tables rules are in, for the agent's log.
func tablesOf(rules []filterRule) string {
	var out []string
	seen := map[string]bool{}
	for _, r := range rules {
		if !seen[r.in()] {
			seen[r.in()] = true
			out = append(out, r.in())
		}
	}
	return strings.Join(out, ", ")
}

// ProbeSpecs checks, in one iptables-save of the nat table, that each
// owner has its rules: as many in its DNAT chain and in DNET-HOSTPORTS
// as ADD made, and its masquerade rules. The forwarding rules are the
// networks', which ProbeBase checks.
func (b *Backend) ProbeSpecs(ports []netfilter.PortMapSpec, masq []netfilter.MasqSpec, _ []netfilter.ForwardSpec) error {
	if len(ports) == 0 && len(masq) == 0 {
		return nil
	}
	snap, err := b.Snapshot("nat")
	if err != nil {
		return err
	}
	for _, s := range ports {
		if s.Routed {
			continue
		}
		chainRules, entries := ownerRules(s, b.family)
		if got := len(snap.rules[DNATChain(s.Owner)]); got != len(chainRules) {
			return fmt.Errorf("%s: chain %s of container %s has %d of its %d rules", b.family, DNATChain(s.Owner), s.Owner.ContainerID, got, len(chainRules))
		}
		if got := len(snap.Owned(ChainHostPorts, s.Owner)); got != len(entries) {
			return fmt.Errorf("%s: %s has %d of the %d entry rules of container %s", b.family, ChainHostPorts, got, len(entries), s.Owner.ContainerID)
		}
	}
	for _, s := range masq {
		if s.Subnet != nil {
			if err := checkMasqNetwork(snap, s, b.family); err != nil {
				return err
			}
			continue
		}
		if got, want := len(snap.Owned(ChainMasq, s.Owner)), len(masqRules(s, b.family)); got != want {
			return fmt.Errorf("%s: %s has %d of the %d masquerade rules of container %s", b.family, ChainMasq, got, want, s.Owner.ContainerID)
		}
	}
	return nil
}
