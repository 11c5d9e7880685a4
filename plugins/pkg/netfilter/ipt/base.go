package ipt

import (
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"

	"fmt"
	"slices"
)

// natBase is what every owner's rules rely on in the nat table: our
// chains, the jumps to them from built-in chains and, for hairpin traffic,
// the shared rule masquerading a mark. A DEL never removes any of it, so
// one container leaving cannot break another's traffic.
type natBase struct {
	jumps   []baseJump
	markBit int // the shared MASQUERADE rule's mark bit; -1: none
	// loopback: the raw loopback drop is part of the base too (portmap's:
	// a port published on 127.0.0.1 whichever backend the bridge uses).
	loopback bool
}

// baseJump is a jump our chain to needs from built-in chain from.
type baseJump struct {
	from string
	args []string // match before the jump
	to   string
}

// baseRule is one rule of the base as written, and how a snapshot shows it.
type baseRule struct {
	chain string
	args  []string
	seen  string // a fragment of its iptables-save line that identifies it
}

// portmapBase is the base of spec's rules.
func portmapBase(spec netfilter.PortMapSpec) natBase {
	local := []string{"-m", "addrtype", "--dst-type", "LOCAL"}
	return natBase{
		jumps: []baseJump{
			{"PREROUTING", local, ChainHostPorts},
			{"OUTPUT", local, ChainHostPorts},
			{"POSTROUTING", nil, ChainPostrouting},
		},
		markBit:  sharedMarkBit(spec),
		loopback: true,
	}
}

// masqBase is the base of bridge's masquerade rules.
func masqBase() natBase {
	return natBase{jumps: []baseJump{{"POSTROUTING", nil, ChainMasq}}, markBit: -1}
}

// rules lists the base's rules in the order they are added.
func (nb natBase) rules() []baseRule {
	var out []baseRule
	for _, j := range nb.jumps {
		args := append(append([]string{}, j.args...), "-m", "comment", "--comment", netfilter.CommentBase, "-j", j.to)
		out = append(out, baseRule{j.from, args, "-j " + j.to + " "})
	}
	if nb.markBit >= 0 {
		out = append(out, baseRule{ChainPostrouting, markMasqRule(nb.markBit), "--mark " + markValue(nb.markBit) + " "})
	}
	return out
}

// missing lists what of the base snap lacks: chains first, then rules.
func (nb natBase) missing(snap *Snapshot) (chains []string, rules []baseRule) {
	for _, j := range nb.jumps {
		if !snap.chains[j.to] && !slices.Contains(chains, j.to) {
			chains = append(chains, j.to)
		}
	}
	for _, r := range nb.rules() {
		if !snap.hasRule(r.chain, r.seen) {
			rules = append(rules, r)
		}
	}
	return chains, rules
}

// ensureBase adds to txn whatever of the base snap lacks.
func ensureBase(txn *ruleTxn, snap *Snapshot, nb natBase) {
	chains, rules := nb.missing(snap)
	for _, c := range chains {
		txn.declareChain(c)
		snap.chains[c] = true
	}
	for _, r := range rules {
		txn.add(r.chain, r.args...)
	}
}

// sharedMarkBit is the mark bit whose shared MASQUERADE rule spec needs,
// or -1 when it needs none (no SNAT, or an external mark chain does it).
func sharedMarkBit(spec netfilter.PortMapSpec) int {
	if !spec.SNAT || spec.ExternalMark != "" {
		return -1
	}
	return spec.MarkBit
}

// markMasqRule masquerades what the DNAT chains marked with bit. Shared by
// every owner using this bit; added once, never removed by a DEL, so one
// container leaving cannot break another's hairpin.
func markMasqRule(bit int) []string {
	return []string{"-m", "comment", "--comment", netfilter.CommentBase,
		"-m", "mark", "--mark", markValue(bit), "-j", "MASQUERADE"}
}

// checkBase reports the first part of the base that snap lacks.
func checkBase(snap *Snapshot, nb natBase, f netfilter.Family) error {
	chains, rules := nb.missing(snap)
	if len(chains) > 0 {
		return fmt.Errorf("%s: chain %s is missing from the nat table", f, chains[0])
	}
	if len(rules) > 0 {
		return fmt.Errorf("%s: rule %q is missing from chain %s", f, joinArgs(rules[0].args), rules[0].chain)
	}
	return nil
}

// requireBase makes a fast transaction, built without a snapshot, commit
// only with the base in place: unless the nf_tables probe finds the base,
// txn gets a -C line per base rule, which refuses the whole restore when
// the rule is missing.
func (b *Backend) requireBase(txn *ruleTxn, nb natBase) {
	if b.nftBacked && nftHasBase(b.family, nb) && (!nb.loopback || nftHasLoopbackDrop(b.family)) {
		return
	}
	for _, r := range nb.rules() {
		txn.check(r.chain, r.args...)
	}
	if nb.loopback {
		r := loopbackDrop(b.family)
		txn.in(r.table).check(r.chain, r.args...)
	}
}
