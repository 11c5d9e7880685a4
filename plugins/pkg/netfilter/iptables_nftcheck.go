package netfilter

import (
	"path/filepath"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
)

// iptables-nft keeps its rules in nf_tables, where one chain can be read
// over netlink without loading the rest. The fast path needs to know that
// the base jumps are in place; asking with -C lines in its restore makes
// iptables-nft load every rule of the table first: measured with 1,000
// containers' rules, a restore of -N/-A lines takes 10-12 ms, the same with
// -C lines 24 ms. Reading the two or three short base chains here takes
// well under a millisecond.

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

// requireBase makes a fast transaction commit only with the base in
// place: jumps, and when markBit >= 0 the shared rule masquerading that
// mark. Found over netlink, txn needs no check; otherwise its -C lines
// make the restore refuse it when something is missing.
func (b *ipTables) requireBase(txn *natTxn, jumps []baseJump, markBit int) {
	if b.basePresent(jumps, markBit) {
		return
	}
	checkBase(txn, jumps)
	if markBit >= 0 {
		txn.check(chainPostrouting, markMasqRule(markBit)...)
	}
}

// basePresent reports, for an nf_tables-backed iptables, whether the nat
// table has every jump in jumps and, when markBit >= 0, the shared rule
// masquerading that mark. The criteria are ensureBase's: a jump to the
// chain, a MASQUERADE of the mark. False means "not known to be there".
func (b *ipTables) basePresent(jumps []baseJump, markBit int) bool {
	if !b.nftBacked {
		return false
	}
	c, err := nftables.New()
	if err != nil {
		return false
	}
	fam := nftables.TableFamilyIPv4
	if b.family == IPv6 {
		fam = nftables.TableFamilyIPv6
	}
	table := &nftables.Table{Name: "nat", Family: fam}
	rules := func(chain string) []*nftables.Rule {
		r, err := c.GetRules(table, &nftables.Chain{Name: chain, Table: table})
		if err != nil {
			return nil
		}
		return r
	}
	for _, j := range jumps {
		if !hasJump(rules(j.from), j.to) {
			return false
		}
	}
	return markBit < 0 || hasMarkMasquerade(rules(chainPostrouting), markBit)
}

// hasJump finds a rule jumping to chain.
func hasJump(rules []*nftables.Rule, chain string) bool {
	for _, r := range rules {
		for _, e := range r.Exprs {
			if v, ok := e.(*expr.Verdict); ok && v.Kind == expr.VerdictJump && v.Chain == chain {
				return true
			}
		}
	}
	return false
}

// hasMarkMasquerade finds markMasqRule as iptables-nft stores it: meta
// mark, masked and compared with the bit (host byte order), then
// MASQUERADE (an xtables target, or native masq in newer iptables).
func hasMarkMasquerade(rules []*nftables.Rule, bit int) bool {
	want := binaryutil.NativeEndian.PutUint32(uint32(1) << uint(bit))
	for _, r := range rules {
		var cmp, masq bool
		for _, e := range r.Exprs {
			switch e := e.(type) {
			case *expr.Cmp:
				cmp = cmp || (e.Op == expr.CmpOpEq && string(e.Data) == string(want))
			case *expr.Target:
				masq = masq || e.Name == "MASQUERADE"
			case *expr.Masq:
				masq = true
			}
		}
		if cmp && masq {
			return true
		}
	}
	return false
}
