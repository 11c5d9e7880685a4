package ipt

// Bridge's ipMasq, per network as Docker does it, never per container:
//
//	nat DNET-MASQ  -s subnet -d except -m comment --comment C -j RETURN          each nonMasqueradeCIDR, first
//	               -s subnet ! -o bridge -m comment --comment C ! -d 224.0.0.0/4 -j MASQUERADE
//
// C is "dnet:fwd br=<bridge> masq <subnet>", with " except=<hash of the
// list>" when there are exceptions: the network's tag, so the rules go with
// its last attachment (DelNetwork) like the filter half's. A network's
// first ADD writes them; every later ADD finds them, over netlink with
// iptables-nft, and runs no iptables-restore for them: with a thousand
// containers' rules in the nat table, each restore reads them all.
// Records written before per-network rules have no subnet; their rules
// are the container's own (masqRules), and DEL removes them as before.

import (
	"github.com/dockernet/cni-plugins/plugins/pkg/filelock"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"

	"fmt"
	"hash/fnv"
	"strings"

	"github.com/google/nftables"
)

// masqNetPrefix starts the comment of the rules of spec's network and
// subnet, whatever their exceptions.
func masqNetPrefix(spec netfilter.MasqSpec) string {
	return ForwardTag(spec.Bridge) + "masq " + spec.Subnet.String()
}

// masqNetComment is the comment of the rules of spec's network and subnet
// with spec's exceptions: other exceptions, another comment.
func masqNetComment(spec netfilter.MasqSpec) string {
	if len(spec.Except) == 0 {
		return masqNetPrefix(spec)
	}
	h := fnv.New32a()
	for _, n := range spec.Except {
		_, _ = h.Write([]byte(n.String() + ","))
	}
	return fmt.Sprintf("%s except=%08x", masqNetPrefix(spec), h.Sum32())
}

// masqNetRules are the masquerade of spec's network and subnet: what
// leaves through any interface but the bridge, unless it goes to one of
// spec.Except (a RETURN each, first).
func masqNetRules(spec netfilter.MasqSpec, f netfilter.Family) [][]string {
	src, comment := spec.Subnet.String(), masqNetComment(spec)
	var rules [][]string
	for _, n := range spec.Except {
		rules = append(rules, []string{"-s", src, "-d", n.String(), "-m", "comment", "--comment", comment, "-j", "RETURN"})
	}
	return append(rules, []string{"-s", src, "!", "-o", spec.Bridge,
		"-m", "comment", "--comment", comment, "!", "-d", multicastNet(f), "-j", "MASQUERADE"})
}

// masqNetSaved are the rules of spec's network and subnet in snap, with
// any exceptions.
func masqNetSaved(snap *Snapshot, spec netfilter.MasqSpec) []string {
	p := `"` + masqNetPrefix(spec)
	return append(snap.Matching(ChainMasq, p+`"`), snap.Matching(ChainMasq, p+" except=")...)
}

// ensureMasqNetwork installs the masquerade of spec's network and subnet
// unless it is in place: seen over netlink with iptables-nft, else by one
// iptables-restore of -C lines that changes nothing. A network's first
// ADD (iptables-nft shows no rule of the subnet) appends them in one
// restore, as the per-container rule was; only a changed or damaged set
// of rules, or iptables-legacy without them, has the table read and the
// subnet's rules replaced. A network's attachment is its member from
// before this runs to after its DEL, and the rules go only with the last
// member, so rules found stay.
func (b *Backend) ensureMasqNetwork(spec netfilter.MasqSpec) error {
	rules := masqNetRules(spec, b.family)
	fast := func(txn *ruleTxn) {
		b.requireBase(txn, masqBase())
		for _, r := range rules {
			txn.check(ChainMasq, r...)
		}
	}
	if b.nftBacked {
		done, replace, err := b.addFreshMasq(spec, rules)
		if done || err != nil {
			return err
		}
		if replace {
			fast = nil // netlink saw other rules of the subnet: no -C would
		}
	}
	return b.editTable("nat", fast, func(txn *ruleTxn, snap *Snapshot) error {
		ensureBase(txn, snap, masqBase())
		for _, r := range masqNetSaved(snap, spec) {
			txn.deleteSaved(ChainMasq, r)
		}
		txn.addAll(ChainMasq, rules)
		return nil
	})
}

// addFreshMasq is ensureMasqNetwork with iptables-nft, under the lock:
// done when netlink shows the subnet's rules as spec wants them, or
// shows none and one restore (the base required as portmap's fast path
// does) appended them. replace: netlink shows rules of the subnet other
// than spec's (changed exceptions, a damaged set), which a snapshot
// replaces.
func (b *Backend) addFreshMasq(spec netfilter.MasqSpec, rules [][]string) (done, replace bool, err error) {
	lk, err := filelock.Acquire(b.lockPath)
	if err != nil {
		return false, false, err
	}
	defer lk.Release()
	exact, any := b.nftCountMasqNet(spec)
	switch {
	case exact == len(rules) && any == exact && nftHasBase(b.family, masqBase()):
		return true, false, nil
	case any > 0:
		return false, exact != len(rules) || any != exact, nil
	case any < 0:
		return false, false, nil
	}
	txn := &ruleTxn{table: "nat"}
	b.requireBase(txn, masqBase())
	txn.addAll(ChainMasq, rules)
	return b.apply(txn) == nil, false, nil
}

// nftCountMasqNet counts, over netlink, the rules of DNET-MASQ of spec's
// network and subnet: those with spec's exceptions, and all of them;
// -1, -1 when it cannot tell.
func (b *Backend) nftCountMasqNet(spec netfilter.MasqSpec) (exact, any int) {
	c, done, err := netfilter.NFTConn()
	if err != nil {
		return -1, -1
	}
	defer done(nil)
	t := &nftables.Table{Name: "nat", Family: b.family.NFT()}
	rules, err := c.GetRules(t, &nftables.Chain{Name: ChainMasq, Table: t})
	if err != nil {
		return -1, -1
	}
	comment, prefix := masqNetComment(spec), masqNetPrefix(spec)
	for _, r := range rules {
		rc := RuleComment(r)
		if rc == comment {
			exact++
		}
		if rc == prefix || strings.HasPrefix(rc, prefix+" except=") {
			any++
		}
	}
	return exact, any
}

// checkMasqNetwork reports whether snap holds exactly the rules of spec's
// network and subnet.
func checkMasqNetwork(snap *Snapshot, spec netfilter.MasqSpec, f netfilter.Family) error {
	want := masqNetRules(spec, f)
	if got := len(snap.Matching(ChainMasq, `"`+masqNetComment(spec)+`"`)); got != len(want) {
		return fmt.Errorf("%s: %s has %d of the %d masquerade rules of network %s, subnet %s", f, ChainMasq, got, len(want), spec.Bridge, spec.Subnet)
	}
	return nil
}
