package ipt

import (
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"

	"fmt"
	"slices"
	"strings"
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
	// first: the jump goes before every rule of another's in from. nat
	// POSTROUTING's: a plugin before us (the reference ptp or bridge with
	// ipMasq) appends a chain that ACCEPTs its container subnet, which
	// would end the nat table before our hairpin masquerade; the
	// reference portmap prepends its jump there for the same reason.
	first bool
}

// baseRule is one rule of the base as written, and how a snapshot shows it.
type baseRule struct {
	chain string
	args  []string
	seen  string // a fragment of its iptables-save line that identifies it
	first bool   // goes before every rule of another's in chain
}

// portmapBase is the base of spec's rules.
func portmapBase(spec netfilter.PortMapSpec) natBase {
	local := []string{"-m", "addrtype", "--dst-type", "LOCAL"}
	return natBase{
		jumps: []baseJump{
			{"PREROUTING", local, ChainHostPorts, false},
			{"OUTPUT", local, ChainHostPorts, false},
			{"POSTROUTING", nil, ChainPostrouting, true},
		},
		markBit:  sharedMarkBit(spec),
		loopback: true,
	}
}

// masqBase is the base of bridge's masquerade rules.
func masqBase() natBase {
	return natBase{jumps: []baseJump{{"POSTROUTING", nil, ChainMasq, true}}, markBit: -1}
}

// rules lists the base's rules in the order they are added.
func (nb natBase) rules() []baseRule {
	var out []baseRule
	for _, j := range nb.jumps {
		args := append(append([]string{}, j.args...), "-m", "comment", "--comment", netfilter.CommentBase, "-j", j.to)
		out = append(out, baseRule{j.from, args, "-j " + j.to + " ", j.first})
	}
	if nb.markBit >= 0 {
		out = append(out, baseRule{ChainPostrouting, markMasqRule(nb.markBit), "--mark " + markValue(nb.markBit) + " ", false})
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

// misplaced lists the saved lines of the base's first rules that a rule
// of another's precedes in their chain.
func (nb natBase) misplaced(snap *Snapshot) (rules []baseRule, saved []string) {
	for _, r := range nb.rules() {
		if !r.first {
			continue
		}
		for _, line := range snap.rules[r.chain] {
			if strings.Contains(line+" ", r.seen) {
				break // reached it with only ours before
			}
			if !strings.Contains(line, netfilter.CommentBase) {
				for _, s := range snap.Matching(r.chain, r.seen) {
					rules, saved = append(rules, r), append(saved, s)
				}
				break
			}
		}
	}
	return rules, saved
}

// ensureBase adds to txn whatever of the base snap lacks, and moves a
// first rule that another's precedes back to the top.
func ensureBase(txn *ruleTxn, snap *Snapshot, nb natBase) {
	chains, rules := nb.missing(snap)
	for _, c := range chains {
		txn.declareChain(c)
		snap.chains[c] = true
	}
	moved, saved := nb.misplaced(snap)
	for i, r := range moved {
		txn.deleteSaved(r.chain, saved[i])
	}
	for _, r := range append(rules, moved...) {
		if r.first {
			txn.insert(r.chain, r.args...)
		} else {
			txn.add(r.chain, r.args...)
		}
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
// only with the base in place: unless the nf_tables probe finds the base
// (first rules first), txn gets a -C line per base rule, which refuses
// the whole restore when the rule is missing; a first rule is deleted and
// inserted again instead, which refuses it the same way and puts the rule
// back on top should another's have been put before it.
func (b *Backend) requireBase(txn *ruleTxn, nb natBase) {
	if b.nftBacked && nftHasBase(b.family, nb) && (!nb.loopback || nftHasLoopbackDrop(b.family)) {
		return
	}
	for _, r := range nb.rules() {
		if r.first {
			txn.del(r.chain, r.args...)
			txn.insert(r.chain, r.args...)
			continue
		}
		txn.check(r.chain, r.args...)
	}
	if nb.loopback {
		r := loopbackDrop(b.family)
		txn.in(r.table).check(r.chain, r.args...)
	}
}
