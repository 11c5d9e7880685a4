package ipt

// The filter half, per network (bridge), never per container: a new
// connection crosses a few rules per network.
//
//	filter FORWARD       -m comment --comment dnet:base -j DNET-FORWARD     appended: the host's own rules decide first
//	filter DNET-FORWARD  -i br -j ACCEPT                                    leaving the bridge (to anywhere, the bridge too)
//	                     -o br -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT   replies, published ports
//	mangle FORWARD       -m comment --comment dnet:base -j DNET-FILTER      first; iptables backend only
//	mangle DNET-FILTER   -i br ! -o br -j DNET-ISOLATE                      isolation, stage 1
//	                     -i br -o br -m conntrack ! --ctstate DNAT -j DROP  icc off
//	mangle DNET-ISOLATE  -o br -m conntrack ! --ctstate DNAT -j DROP        isolation, stage 2
//	                                                                        (a routed network: stage 1 only)
//	mangle PREROUTING    -m comment --comment dnet:base -j DNET-GUARD       first; only with a protected network
//	mangle DNET-GUARD    -d subnet ! -i br -m addrtype ! --dst-type LOCAL -m conntrack ! --ctstate RELATED,ESTABLISHED -j DROP
//	                                                                        direct routing, whatever conntrack made of it
//	raw PREROUTING       -d 127.0.0.0/8 ! -i lo -m comment --comment dnet:base -j DROP   first (ip6: ::1)
//	filter FORWARD       -m comment --comment dnet:fwd-guard -j DNET-FWD-GUARD   after the jump; only when the bridge turned forwarding on
//	filter DNET-FWD-GUARD  -i br -j RETURN; -o br -j RETURN                 each network, first
//	                     -m comment --comment dnet:fwd-guard -j DROP        no network of ours takes part
//
// Every drop comes before filter FORWARD, where no ACCEPT another
// firewall put earlier (ufw's route rules, flannel's accepts for its
// network, the reference firewall plugin's, which Podman chains after
// the bridge and which puts its chain first in FORWARD at every ADD,
// accepting whatever its containers send) can undo it:
//   - mangle FORWARD: isolation between networks and icc off, which
//     conntrack's DNAT state (set in nat PREROUTING) already tells from a
//     published port;
//   - raw: what arrives from outside addressed to loopback, so a neighbour
//     cannot reach a port published on 127.0.0.1, nor a container (its
//     bridge has route_localnet for such mappings) the host's loopback
//     services; portmap's iptables backend installs it too;
//   - mangle, after conntrack: what arrives from outside the bridge
//     addressed to a protected network's containers (not to the host's
//     own address on it), unless it belongs to a connection conntrack
//     knows (a reply to one the container opened): new, invalid and
//     untracked packets alike, so a bare FIN or a NOTRACK'd SYN finds no
//     way in. Docker drops at raw, before conntrack, which cannot tell
//     such a reply (ipMasq off, nonMasqueradeCIDRs) from direct routing.
//
// Releases before this one kept DNET-FILTER and DNET-ISOLATE in the filter
// table; a network's next ADD moves its rules (those chains, left empty,
// stay until dnetctl uninstall). The iptables backend installs all of it.
// The nftables backend drops in
// its own table and installs here only the base jump and the accepts, in
// every iptables flavour whose filter table exists: an accept in one
// table cannot override a drop (the FORWARD policy, say) in another.
//
// A network's rules carry the comment "dnet:fwd br=<bridge> <settings>";
// when the settings change, the next ADD replaces them. They mention no
// container, and go with the network's last attachment (DelNetwork). The
// base (our chains, the jumps to them, the loopback drop) stays, empty of
// any network's rules, until dnetctl uninstall.

import (
	"github.com/dockernet/cni-plugins/plugins/pkg/filelock"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"

	"fmt"
	"strings"
)

const (
	ChainForward  = "DNET-FORWARD"
	ChainFilter   = "DNET-FILTER"
	ChainIsolate  = "DNET-ISOLATE"
	ChainGuard    = "DNET-GUARD"
	ChainFwdGuard = "DNET-FWD-GUARD"
)

// filterRule is one rule of the filter half: where it goes and its tokens.
type filterRule struct {
	chain  string
	args   []string
	insert bool   // at the top of its chain (base rules that must come first)
	table  string // "" for filter
}

func (r filterRule) in() string {
	if r.table == "" {
		return "filter"
	}
	return r.table
}

// forwardComment names a network's rules and the settings they implement.
func forwardComment(spec netfilter.ForwardSpec, drops bool) string {
	settings := "accept-only"
	if drops {
		var on []string
		for _, s := range []struct {
			yes  bool
			name string
		}{{spec.Protect, "protect"}, {spec.Routed, "routed"}, {spec.Isolate, "isolate"}, {spec.IsolateOut, "isolate-out"}, {spec.NoICC, "noicc"}} {
			if s.yes {
				on = append(on, s.name)
			}
		}
		settings = "drops=" + strings.Join(on, ",")
	}
	return ForwardTag(spec.Bridge) + settings
}

// ForwardTag starts the comment of every rule of bridge's network.
func ForwardTag(bridge string) string { return netfilter.TagPrefix + "fwd br=" + bridge + " " }

// forwardBase is what spec's network's rules rely on. The mangle jump is
// there only for a protected network: it costs every packet the host
// receives, so a host without one does not pay it.
func forwardBase(f netfilter.Family, spec netfilter.ForwardSpec, drops bool) []filterRule {
	base := []filterRule{{chain: "FORWARD", args: []string{"-m", "comment", "--comment", netfilter.CommentBase, "-j", ChainForward}}}
	if drops {
		base = append(base,
			filterRule{chain: "FORWARD", table: "mangle", args: []string{"-m", "comment", "--comment", netfilter.CommentBase, "-j", ChainFilter}, insert: true},
			loopbackDrop(f))
	}
	if drops && spec.Protect {
		base = append(base,
			filterRule{chain: "PREROUTING", table: "mangle", args: []string{"-m", "comment", "--comment", netfilter.CommentBase, "-j", ChainGuard}, insert: true})
	}
	if drops && spec.Guard {
		base = append(base, forwardGuard)
	}
	return base
}

// forwardGuard jumps, at the end of FORWARD, to DNET-FWD-GUARD, which
// drops what none of our networks takes part in: Docker's FORWARD policy
// DROP when it turned forwarding on, without changing a policy we did not
// set. The host's own FORWARD rules still decide first, as under Docker.
var forwardGuard = filterRule{chain: "FORWARD", args: []string{"-m", "comment", "--comment", netfilter.CommentForwardGuard, "-j", ChainFwdGuard}}

// guardDrop ends DNET-FWD-GUARD; each network's RETURNs go before it.
var guardDrop = []string{"-m", "comment", "--comment", netfilter.CommentForwardGuard, "-j", "DROP"}

// placeGuard makes DNET-FWD-GUARD end in its drop and appends the jump to
// it, or moves the jump after a jump to DNET-FORWARD this transaction
// appends: before that one it would drop what DNET-FORWARD accepts.
func placeGuard(txn *ruleTxn, snap *Snapshot, jumpAppended bool) {
	if !snap.hasRule(ChainFwdGuard, netfilter.CommentForwardGuard, "-j DROP ") {
		txn.add(ChainFwdGuard, guardDrop...)
	}
	saved := snap.Matching(forwardGuard.chain, netfilter.CommentForwardGuard)
	if len(saved) > 0 && !jumpAppended {
		return
	}
	for _, r := range saved {
		txn.deleteSaved(forwardGuard.chain, r)
	}
	txn.add(forwardGuard.chain, forwardGuard.args...)
}

// loopbackDrop drops, before any DNAT, what arrives from outside addressed
// to the family's loopback.
func loopbackDrop(f netfilter.Family) filterRule {
	return filterRule{chain: "PREROUTING", table: "raw", insert: true,
		args: []string{"-d", f.Loopback(), "!", "-i", "lo", "-m", "comment", "--comment", netfilter.CommentBase, "-j", "DROP"}}
}

// guardDest is what a network's direct-routing drop matches: its subnet,
// or, for a record written before subnets were recorded, the address.
func guardDest(spec netfilter.ForwardSpec) string {
	if spec.Subnet != nil {
		return spec.Subnet.String()
	}
	return spec.IP.String() + netfilter.FamilyOf(spec.IP).HostPrefix()
}

// forwardNetRules are one network's rules.
func forwardNetRules(spec netfilter.ForwardSpec, drops bool) []filterRule {
	br, c := spec.Bridge, []string{"-m", "comment", "--comment", forwardComment(spec, drops)}
	with := func(args ...string) []string {
		return append(append([]string{}, args[:len(args)-2]...), append(c, args[len(args)-2:]...)...)
	}
	rules := []filterRule{
		{chain: ChainForward, args: with("-i", br, "-j", "ACCEPT")},
		{chain: ChainForward, args: with("-o", br, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED,DNAT", "-j", "ACCEPT")},
	}
	if !drops {
		return rules
	}
	if spec.Guard {
		rules = append(rules,
			filterRule{chain: ChainFwdGuard, args: with("-i", br, "-j", "RETURN"), insert: true},
			filterRule{chain: ChainFwdGuard, args: with("-o", br, "-j", "RETURN"), insert: true})
	}
	if spec.Protect {
		for _, ifc := range spec.Trusted {
			rules = append(rules, filterRule{chain: ChainGuard, table: "mangle", args: with("-d", guardDest(spec), "-i", ifc, "-j", "RETURN")})
		}
		if spec.Routed {
			rules = append(rules, filterRule{chain: ChainGuard, table: "mangle", args: with("-d", guardDest(spec), "-p", icmpName(netfilter.FamilyOf(spec.IP)), "-j", "RETURN")})
		}
		rules = append(rules, filterRule{chain: ChainGuard, table: "mangle",
			args: with("-d", guardDest(spec), "!", "-i", br, "-m", "addrtype", "!", "--dst-type", "LOCAL", "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED", "-j", "DROP")})
	}
	if spec.Isolate {
		rules = append(rules,
			filterRule{chain: ChainFilter, table: "mangle", args: with("-i", br, "!", "-o", br, "-j", ChainIsolate)},
			filterRule{chain: ChainIsolate, table: "mangle", args: with("-o", br, "-m", "conntrack", "!", "--ctstate", "DNAT", "-j", "DROP")})
	}
	if spec.IsolateOut {
		// Stage 1 only: what it sends meets the other networks' stage 2.
		// Replies to connections others opened to its published ports
		// must not meet stage 2.
		rules = append(rules, filterRule{chain: ChainFilter, table: "mangle", args: with("-i", br, "!", "-o", br, "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED", "-j", ChainIsolate)})
	}
	if spec.NoICC {
		rules = append(rules, filterRule{chain: ChainFilter, table: "mangle", args: with("-i", br, "-o", br, "-m", "conntrack", "!", "--ctstate", "DNAT", "-j", "DROP")})
	}
	return rules
}

// icmpName is how iptables-save names the family's ICMP.
func icmpName(f netfilter.Family) string {
	if f == netfilter.IPv6 {
		return "ipv6-icmp"
	}
	return "icmp"
}

// forwardChains are the chains of ours the rules need, by table.
func forwardChains(spec netfilter.ForwardSpec, drops bool) map[string][]string {
	if !drops {
		return map[string][]string{"filter": {ChainForward}}
	}
	out := map[string][]string{"filter": {ChainForward}, "mangle": {ChainFilter, ChainIsolate}}
	if spec.Guard {
		out["filter"] = append(out["filter"], ChainFwdGuard)
	}
	if spec.Protect {
		out["mangle"] = append(out["mangle"], ChainGuard)
	}
	return out
}

// ourChains are every chain of ours, by table: where a network's old
// rules may be (DNET-FILTER and DNET-ISOLATE in filter: earlier releases').
var ourChains = map[string][]string{"filter": {ChainForward, ChainFilter, ChainIsolate, ChainFwdGuard}, "mangle": {ChainGuard, ChainFilter, ChainIsolate}, "nat": {ChainMasq}}

// ensureForward installs spec's network rules (and the base) unless they
// are all in place already: one iptables-restore of -C lines changes
// nothing and fails if one is missing, and only then are the tables read
// and rewritten.
func (b *Backend) ensureForward(spec netfilter.ForwardSpec, drops bool) error {
	if b.nftBacked && !spec.Guard {
		if added, err := b.addFreshNetwork(spec, drops); added || err != nil {
			return err
		}
	}
	if b.checkAll(forwardWant(b.family, spec, drops)) == nil {
		return nil
	}
	tables := []string{"filter"}
	// The loopback drop, unless iptables-nft's raw table shows it over
	// netlink (a network's first ADD: the drop is the host's and stayed).
	if drops && !(b.nftBacked && b.nftHasComment("raw", "PREROUTING", netfilter.CommentBase)) {
		tables = append(tables, "raw")
	}
	// Isolation, icc and direct routing.
	if drops {
		tables = append(tables, "mangle")
	}
	for _, table := range tables {
		err := b.editTable(table, nil, func(txn *ruleTxn, snap *Snapshot) error {
			for _, c := range forwardChains(spec, drops)[table] {
				if !snap.chains[c] {
					txn.declareChain(c)
					snap.chains[c] = true
				}
			}
			jumpAppended := false
			for _, r := range forwardBase(b.family, spec, drops) {
				if r.in() != table || r.args[len(r.args)-1] == ChainFwdGuard {
					continue
				}
				if snap.hasRule(r.chain, netfilter.CommentBase, "-j "+r.args[len(r.args)-1]+" ") {
					continue
				}
				jumpAppended = jumpAppended || r.chain == "FORWARD"
				if r.insert {
					txn.insert(r.chain, r.args...)
				} else {
					txn.add(r.chain, r.args...)
				}
			}
			if drops && spec.Guard && table == "filter" {
				placeGuard(txn, snap, jumpAppended)
			}
			// The network's rules in this table, replaced as a whole.
			prefix := `"` + ForwardTag(spec.Bridge)
			for _, c := range ourChains[table] {
				for _, r := range snap.Matching(c, prefix) {
					txn.deleteSaved(c, r)
				}
			}
			for _, r := range forwardNetRules(spec, drops) {
				switch {
				case r.in() != table:
				case r.insert:
					txn.insert(r.chain, r.args...)
				default:
					txn.add(r.chain, r.args...)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// addFreshNetwork adds the rules of a network that has none (its first
// ADD, or the first after its last DEL removed them), as netlink shows
// under the iptables lock, in one iptables-restore whose -C lines refuse
// it, changing nothing, unless the base is in place: no iptables-save.
// false when it did not apply (the network has rules, or the base is not
// complete), for the caller's usual path.
func (b *Backend) addFreshNetwork(spec netfilter.ForwardSpec, drops bool) (bool, error) {
	lk, err := filelock.Acquire(b.lockPath)
	if err != nil {
		return false, err
	}
	defer lk.Release()
	for _, table := range []string{"filter", "mangle"} {
		if b.nftHasNetworkRules(table, spec.Bridge) {
			return false, nil
		}
	}
	txns := map[string]*ruleTxn{}
	var order []*ruleTxn
	in := func(table string) *ruleTxn {
		if txns[table] == nil {
			txns[table] = &ruleTxn{table: table}
			order = append(order, txns[table])
		}
		return txns[table]
	}
	for _, r := range forwardBase(b.family, spec, drops) {
		in(r.in()).check(r.chain, r.args...)
	}
	for _, r := range forwardNetRules(spec, drops) {
		if r.insert {
			in(r.in()).insert(r.chain, r.args...)
		} else {
			in(r.in()).add(r.chain, r.args...)
		}
	}
	return b.apply(order...) == nil, nil
}

// checkAll runs one iptables-restore that fails unless every rule exists.
func (b *Backend) checkAll(rules []filterRule) error {
	txns := map[string]*ruleTxn{}
	var order []*ruleTxn
	for _, r := range rules {
		txn := txns[r.in()]
		if txn == nil {
			txn = &ruleTxn{table: r.in()}
			txns[r.in()] = txn
			order = append(order, txn)
		}
		txn.check(r.chain, r.args...)
	}
	return b.apply(order...)
}

// forwardWant is every rule spec relies on: the base, the network's
// rules and, where the bridge turned forwarding on, the guard's drop.
func forwardWant(f netfilter.Family, spec netfilter.ForwardSpec, drops bool) []filterRule {
	want := append(forwardBase(f, spec, drops), forwardNetRules(spec, drops)...)
	if drops && spec.Guard {
		want = append(want, filterRule{chain: ChainFwdGuard, args: guardDrop})
	}
	return want
}

// checkForward reports the first of spec's rules that is missing.
func (b *Backend) checkForward(spec netfilter.ForwardSpec, drops bool) error {
	want := forwardWant(b.family, spec, drops)
	err := b.checkAll(want)
	if err == nil {
		return nil
	}
	if r, ok := b.firstMissing(want); ok {
		return fmt.Errorf("%s: %s rule %q is missing from chain %s", b.family, r.in(), joinArgs(r.args), r.chain)
	}
	return fmt.Errorf("%s: forwarding rules of bridge %s: %v", b.family, spec.Bridge, err)
}

// firstMissing finds a rule of rules, whose check as a whole failed, that
// is missing: by halves, a few restores rather than one per rule, on
// this failure path only. false when each half passes alone (the rules
// changed in between).
func (b *Backend) firstMissing(rules []filterRule) (filterRule, bool) {
	for len(rules) > 1 {
		half := rules[:len(rules)/2]
		if b.checkAll(half) != nil {
			rules = half
			continue
		}
		rules = rules[len(rules)/2:]
		if b.checkAll(rules) == nil {
			return filterRule{}, false
		}
	}
	if len(rules) == 1 && b.checkAll(rules) != nil {
		return rules[0], true
	}
	return filterRule{}, false
}

func (b *Backend) AddForward(tx *netfilter.Txn, spec netfilter.ForwardSpec) {
	b.queue(tx, func() error { return b.ensureForward(spec, true) })
}

// DelForward removes nothing: the rules are the network's, not the container's.
func (b *Backend) DelForward(*netfilter.Txn, netfilter.ForwardSpec) {}

// DelForwardGuard deletes the jump to the forwarding guard and its chain,
// if there.
func (b *Backend) DelForwardGuard(tx *netfilter.Txn) {
	b.queue(tx, func() error {
		return b.editTable("filter", nil, func(txn *ruleTxn, snap *Snapshot) error {
			for _, r := range snap.Matching(forwardGuard.chain, netfilter.CommentForwardGuard) {
				txn.deleteSaved(forwardGuard.chain, r)
			}
			if snap.chains[ChainFwdGuard] {
				txn.flushChain(ChainFwdGuard)
				txn.deleteChain(ChainFwdGuard)
			}
			return nil
		})
	})
}

func (b *Backend) CheckForward(spec netfilter.ForwardSpec) error { return b.checkForward(spec, true) }

// hasChain reports whether table already holds chain: over netlink with
// iptables-nft; with iptables-legacy, whether the table is loaded at all
// (reading it would load it, and hook every packet).
func (b *Backend) hasChain(table, chain string) bool {
	if b.nftBacked {
		return b.nftHasAnyChain(table, []string{chain})
	}
	return LegacyTablePresent(b.family, table)
}

// DelNetwork deletes every rule of bridge's network, in each of our
// chains: what the network's last attachment leaves behind.
func (b *Backend) DelNetwork(tx *netfilter.Txn, bridge string) {
	b.queue(tx, func() error { return b.removeNetwork(bridge, []string{"filter", "mangle", "nat"}) })
}

// removeNetwork deletes bridge's network rules from tables, reading only
// the tables that hold a chain of ours (reading a legacy table loads it).
func (b *Backend) removeNetwork(bridge string, tables []string) error {
	prefix := `"` + ForwardTag(bridge)
	for _, table := range tables {
		if b.nftBacked {
			// Over netlink, by handle: no iptables-save, no restore.
			if err := b.nftDelNetworkRules(table, bridge); err != nil {
				return fmt.Errorf("remove the rules of bridge %s: %w", bridge, err)
			}
			continue
		}
		if !LegacyTablePresent(b.family, table) {
			continue
		}
		err := b.editTable(table, nil, func(txn *ruleTxn, snap *Snapshot) error {
			for _, c := range ourChains[table] {
				for _, r := range snap.Matching(c, prefix) {
					txn.deleteSaved(c, r)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("remove the rules of bridge %s: %w", bridge, err)
		}
	}
	return nil
}
