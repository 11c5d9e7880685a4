package ipt

import (
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"

	"bytes"
	"path/filepath"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
)

// iptables defines no cheap way to ask whether a rule exists: a -C line in
// iptables-restore makes iptables-nft load every rule of the table, so the
// fast path's guard would grow with the number of containers. When
// iptables is nf_tables-backed, the few rules of the base chains can be
// read over netlink instead. This file is the only place that reads what
// iptables-nft stored, and it only ever answers "found" or "not known":
// where it does not recognise a rule, requireBase falls back to -C lines.

// nftBacked reports whether restore is iptables-nft (Debian's default
// since 11), judged by the binary it resolves to: a version probe would
// cost a process start on every ADD.
func nftBacked(restore string) bool {
	target, err := filepath.EvalSymlinks(restore)
	if err != nil {
		return false
	}
	return strings.Contains(filepath.Base(target), "nft")
}

// nftHasBase reports whether the nat table of family f, as iptables-nft
// stored it, holds every rule of nb. It recognises only exact shapes: a
// jump is the nf_tables jump verdict to the chain; the mark rule is, in our
// own chain DNET-POSTROUTING, "meta mark & bit == bit" followed by a
// masquerade (the MASQUERADE target or native masq), which is how
// iptables-nft translates -m mark --mark bit/bit -j MASQUERADE.
func nftHasBase(f netfilter.Family, nb natBase) bool {
	c, done, err := netfilter.NFTConn()
	if err != nil {
		return false
	}
	defer done(nil)
	table := &nftables.Table{Name: "nat", Family: f.NFT()}
	rulesOf := func(chain string) []*nftables.Rule {
		rules, err := c.GetRules(table, &nftables.Chain{Name: chain, Table: table})
		if err != nil {
			return nil
		}
		return rules
	}
	for _, j := range nb.jumps {
		rules := rulesOf(j.from)
		if !anyRule(rules, func(r *nftables.Rule) bool { return jumpsTo(r, j.to) }) {
			return false
		}
		if j.first && !firstOfOurs(rules, j.to) {
			return false
		}
	}
	if nb.markBit < 0 {
		return true
	}
	return anyRule(rulesOf(ChainPostrouting), func(r *nftables.Rule) bool { return masqueradesMark(r, nb.markBit) })
}

// nftJumps reports whether iptables-nft's chain from in table holds a
// jump to chain to.
func nftJumps(f netfilter.Family, table, from, to string) bool {
	c, done, err := netfilter.NFTConn()
	if err != nil {
		return false
	}
	defer done(nil)
	t := &nftables.Table{Name: table, Family: f.NFT()}
	rules, err := c.GetRules(t, &nftables.Chain{Name: from, Table: t})
	return err == nil && anyRule(rules, func(r *nftables.Rule) bool { return jumpsTo(r, to) })
}

func anyRule(rules []*nftables.Rule, match func(*nftables.Rule) bool) bool {
	for _, r := range rules {
		if match(r) {
			return true
		}
	}
	return false
}

// firstOfOurs reports whether only jumps to our chains (DNET-…) come
// before the jump to chain in rules.
func firstOfOurs(rules []*nftables.Rule, chain string) bool {
	for _, r := range rules {
		if jumpsTo(r, chain) {
			return true
		}
		if len(r.Exprs) == 0 {
			return false
		}
		v, ok := r.Exprs[len(r.Exprs)-1].(*expr.Verdict)
		if !ok || v.Kind != expr.VerdictJump || !strings.HasPrefix(v.Chain, chainPrefix) {
			return false
		}
	}
	return false
}

// jumpsTo reports whether r ends in a jump to chain.
func jumpsTo(r *nftables.Rule, chain string) bool {
	if len(r.Exprs) == 0 {
		return false
	}
	v, ok := r.Exprs[len(r.Exprs)-1].(*expr.Verdict)
	return ok && v.Kind == expr.VerdictJump && v.Chain == chain
}

// masqueradesMark reports whether r is exactly "meta mark & bit == bit,
// masquerade", with only comments and counters besides.
func masqueradesMark(r *nftables.Rule, bit int) bool {
	want := binaryutil.NativeEndian.PutUint32(uint32(1) << uint(bit))
	zero := binaryutil.NativeEndian.PutUint32(0)
	var core []expr.Any
	for _, e := range r.Exprs {
		switch e := e.(type) {
		case *expr.Counter:
		case *expr.Match:
			if e.Name != "comment" {
				return false
			}
		default:
			core = append(core, e)
		}
	}
	if len(core) != 4 {
		return false
	}
	meta, ok1 := core[0].(*expr.Meta)
	mask, ok2 := core[1].(*expr.Bitwise)
	cmp, ok3 := core[2].(*expr.Cmp)
	if !ok1 || !ok2 || !ok3 || meta.Key != expr.MetaKeyMARK || meta.SourceRegister {
		return false
	}
	if mask.SourceRegister != meta.Register || cmp.Register != mask.DestRegister ||
		!bytes.Equal(mask.Mask, want) || !bytes.Equal(mask.Xor, zero) ||
		cmp.Op != expr.CmpOpEq || !bytes.Equal(cmp.Data, want) {
		return false
	}
	switch t := core[3].(type) {
	case *expr.Masq:
		return true
	case *expr.Target:
		return t.Name == "MASQUERADE"
	}
	return false
}

// nftHasLoopbackDrop reports whether iptables-nft's raw PREROUTING holds
// a rule of ours (its comment dnet:base) that drops.
func nftHasLoopbackDrop(f netfilter.Family) bool {
	c, done, err := netfilter.NFTConn()
	if err != nil {
		return false
	}
	defer done(nil)
	table := &nftables.Table{Name: "raw", Family: f.NFT()}
	rules, err := c.GetRules(table, &nftables.Chain{Name: "PREROUTING", Table: table})
	if err != nil {
		return false
	}
	return anyRule(rules, func(r *nftables.Rule) bool {
		if RuleComment(r) != netfilter.CommentBase || len(r.Exprs) == 0 {
			return false
		}
		v, ok := r.Exprs[len(r.Exprs)-1].(*expr.Verdict)
		return ok && v.Kind == expr.VerdictDrop
	})
}
