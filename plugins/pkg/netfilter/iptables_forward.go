package netfilter

// The filter half in iptables' filter table, per network (bridge), never
// per container: a new connection crosses a few rules per network.
//
//	FORWARD       -m comment --comment dnet:base -j DNET-FORWARD          appended: the host's own rules decide first
//	DNET-FORWARD  -m comment --comment dnet:base -j DNET-FILTER           first; iptables backend only
//	              -i br -j ACCEPT                                         leaving the bridge (to anywhere, the bridge too)
//	              -o br -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT   replies, published ports
//	DNET-FILTER   -o br ! -i br -m conntrack --ctdir ORIGINAL ! --ctstate DNAT -j DROP   direct routing
//	              -i br ! -o br -j DNET-ISOLATE                           isolation, stage 1
//	              -i br -o br -m conntrack ! --ctstate DNAT -j DROP       icc off
//	DNET-ISOLATE  -o br -m conntrack ! --ctstate DNAT -j DROP             isolation, stage 2
//	raw PREROUTING -d 127.0.0.0/8 ! -i lo -m comment --comment dnet:base -j DROP   (ip6: ::1)
//
// The raw rule is the nftables backend's prerouting drop: what arrives from
// outside addressed to loopback is dropped before DNAT, so a neighbour
// cannot reach a port published on 127.0.0.1, nor a container (its bridge
// has route_localnet for such mappings) the host's loopback services.
//
// The iptables backend installs all of it. The nftables backend drops in
// its own table and installs here only the base jump and the accepts, in
// every iptables flavour whose filter table exists: an accept in one
// table cannot override a drop (the FORWARD policy, say) in another.
//
// A network's rules carry the comment "dnet:fwd br=<bridge> <settings>";
// when the settings change, the next ADD replaces them. They stay after
// the last DEL, as the bridge does, and mention no container.

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
)

const (
	chainForward = "DNET-FORWARD"
	chainFilter  = "DNET-FILTER"
	chainIsolate = "DNET-ISOLATE"
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
func forwardComment(spec ForwardSpec, drops bool) string {
	settings := "accept-only"
	if drops {
		var on []string
		for _, s := range []struct {
			yes  bool
			name string
		}{{spec.Protect, "protect"}, {spec.Isolate, "isolate"}, {spec.NoICC, "noicc"}} {
			if s.yes {
				on = append(on, s.name)
			}
		}
		settings = "drops=" + strings.Join(on, ",")
	}
	return forwardTag(spec.Bridge) + settings
}

// forwardTag starts the comment of every rule of bridge's network.
func forwardTag(bridge string) string { return tagPrefix + "fwd br=" + bridge + " " }

// forwardBase is what every network's rules rely on.
func forwardBase(f Family, drops bool) []filterRule {
	base := []filterRule{{chain: "FORWARD", args: []string{"-m", "comment", "--comment", commentBase, "-j", chainForward}}}
	if drops {
		loop := "127.0.0.0/8"
		if f == IPv6 {
			loop = "::1/128"
		}
		base = append(base,
			filterRule{chain: chainForward, args: []string{"-m", "comment", "--comment", commentBase, "-j", chainFilter}, insert: true},
			filterRule{chain: "PREROUTING", table: "raw", args: []string{"-d", loop, "!", "-i", "lo", "-m", "comment", "--comment", commentBase, "-j", "DROP"}})
	}
	return base
}

// forwardNetRules are one network's rules.
func forwardNetRules(spec ForwardSpec, drops bool) []filterRule {
	br, c := spec.Bridge, []string{"-m", "comment", "--comment", forwardComment(spec, drops)}
	with := func(args ...string) []string {
		return append(append([]string{}, args[:len(args)-2]...), append(c, args[len(args)-2:]...)...)
	}
	rules := []filterRule{
		{chain: chainForward, args: with("-i", br, "-j", "ACCEPT")},
		{chain: chainForward, args: with("-o", br, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED,DNAT", "-j", "ACCEPT")},
	}
	if !drops {
		return rules
	}
	if spec.Protect {
		rules = append(rules, filterRule{chain: chainFilter, args: with("-o", br, "!", "-i", br, "-m", "conntrack", "--ctdir", "ORIGINAL", "!", "--ctstate", "DNAT", "-j", "DROP")})
	}
	if spec.Isolate {
		rules = append(rules,
			filterRule{chain: chainFilter, args: with("-i", br, "!", "-o", br, "-j", chainIsolate)},
			filterRule{chain: chainIsolate, args: with("-o", br, "-m", "conntrack", "!", "--ctstate", "DNAT", "-j", "DROP")})
	}
	if spec.NoICC {
		rules = append(rules, filterRule{chain: chainFilter, args: with("-i", br, "-o", br, "-m", "conntrack", "!", "--ctstate", "DNAT", "-j", "DROP")})
	}
	return rules
}

// forwardChains are the chains the rules need.
func forwardChains(drops bool) []string {
	if drops {
		return []string{chainForward, chainFilter, chainIsolate}
	}
	return []string{chainForward}
}

// ensureForward installs spec's network rules (and the base) unless they
// are all in place already: one iptables-restore of -C lines changes
// nothing and fails if one is missing, and only then are the tables read
// and rewritten.
func (b *ipTables) ensureForward(spec ForwardSpec, drops bool) error {
	want := append(forwardBase(b.family, drops), forwardNetRules(spec, drops)...)
	if b.checkAll(want) == nil {
		return nil
	}
	tables := []string{"filter"}
	if drops {
		tables = append(tables, "raw") // the loopback drop
	}
	for _, table := range tables {
		err := b.editTable(table, nil, func(txn *ruleTxn, snap *tableSnapshot) error {
			if table == "filter" {
				for _, c := range forwardChains(drops) {
					if !snap.chains[c] {
						txn.declareChain(c)
						snap.chains[c] = true
					}
				}
			}
			for _, r := range forwardBase(b.family, drops) {
				if r.in() != table || snap.hasRule(r.chain, commentBase, "-j "+r.args[len(r.args)-1]+" ") {
					continue
				}
				if r.insert {
					txn.insert(r.chain, r.args...)
				} else {
					txn.add(r.chain, r.args...)
				}
			}
			if table != "filter" {
				return nil
			}
			prefix := `"` + forwardTag(spec.Bridge)
			for _, c := range forwardChains(true) {
				for _, r := range snap.matching(c, prefix) {
					txn.deleteSaved(c, r)
				}
			}
			for _, r := range forwardNetRules(spec, drops) {
				txn.add(r.chain, r.args...)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// checkAll runs one iptables-restore that fails unless every rule exists.
func (b *ipTables) checkAll(rules []filterRule) error {
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

// checkForward reports the first of spec's rules that is missing.
func (b *ipTables) checkForward(spec ForwardSpec, drops bool) error {
	want := append(forwardBase(b.family, drops), forwardNetRules(spec, drops)...)
	err := b.checkAll(want)
	if err == nil {
		return nil
	}
	// Which one: a restore per rule, on this failure path only.
	for _, r := range want {
		if b.checkAll([]filterRule{r}) != nil {
			return fmt.Errorf("%s: %s rule %q is missing from chain %s", b.family, r.in(), joinArgs(r.args), r.chain)
		}
	}
	return fmt.Errorf("%s: forwarding rules of bridge %s: %v", b.family, spec.Bridge, err)
}

func (b *ipTables) AddForward(spec ForwardSpec) error { return b.ensureForward(spec, true) }

// DelForward removes nothing: the rules are the network's, not the container's.
func (b *ipTables) DelForward(ForwardSpec) error { return nil }

func (b *ipTables) CheckForward(spec ForwardSpec) error { return b.checkForward(spec, true) }

// flavour is one iptables implementation: nf_tables-backed or legacy.
type flavour struct {
	name    string
	binary  string                                // "iptables-nft" or "iptables-legacy" (ip6tables-... for IPv6)
	present func(f Family) bool                   // its filter table exists in this netns
	probe   func(f Family, spec ForwardSpec) bool // cheap "already accepted" check, or nil
}

func flavours() []flavour {
	return []flavour{
		{name: "nft", binary: "nft", present: nftFilterPresent, probe: nftHasAccepts},
		{name: "legacy", binary: "legacy", present: legacyFilterPresent},
	}
}

// flavourTables returns the iptables backend of flavour fl for family f.
func flavourTables(fl flavour, f Family, opts Options) (*ipTables, error) {
	prefix := "iptables"
	if f == IPv6 {
		prefix = "ip6tables"
	}
	save, err1 := exec.LookPath(prefix + "-" + fl.binary + "-save")
	restore, err2 := exec.LookPath(prefix + "-" + fl.binary + "-restore")
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	lock := opts.LockPath
	if lock == "" {
		lock = DefaultLockPath
	}
	return &ipTables{family: f, save: save, restore: restore, lockPath: lock, nftBacked: fl.name == "nft"}, nil
}

// acceptInIPTables adds bridge's accept rules to every iptables flavour
// with a filter table here, so that its FORWARD policy or rules cannot
// drop what the nftables backend lets through.
func acceptInIPTables(f Family, bridge string, opts Options) error {
	spec := ForwardSpec{Bridge: bridge}
	for _, fl := range flavours() {
		if !fl.present(f) || (fl.probe != nil && fl.probe(f, spec)) {
			continue
		}
		ipt, err := flavourTables(fl, f, opts)
		if err != nil {
			return fmt.Errorf("the iptables-%s filter table exists, and its FORWARD chain may drop what bridge %s forwards, but %v (install the iptables package)", fl.name, bridge, err)
		}
		if err := ipt.ensureForward(spec, false); err != nil {
			return err
		}
	}
	return nil
}

// checkAcceptInIPTables verifies what acceptInIPTables installs.
func checkAcceptInIPTables(f Family, bridge string, opts Options) error {
	spec := ForwardSpec{Bridge: bridge}
	for _, fl := range flavours() {
		if !fl.present(f) {
			continue
		}
		ipt, err := flavourTables(fl, f, opts)
		if err != nil {
			return err
		}
		if err := ipt.checkForward(spec, false); err != nil {
			return fmt.Errorf("iptables-%s: %w", fl.name, err)
		}
	}
	return nil
}

// legacyFilterPresent reads the legacy tables this netns has loaded.
func legacyFilterPresent(f Family) bool { return legacyTablePresent(f, "filter") }

// legacyTablePresent reports whether iptables-legacy's table is loaded here.
func legacyTablePresent(f Family, table string) bool {
	name := "/proc/thread-self/net/ip_tables_names" // the calling thread's netns
	if f == IPv6 {
		name = "/proc/thread-self/net/ip6_tables_names"
	}
	file, err := os.Open(name)
	if err != nil {
		return false
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == table {
			return true
		}
	}
	return false
}

func nftFamily(f Family) nftables.TableFamily {
	if f == IPv6 {
		return nftables.TableFamilyIPv6
	}
	return nftables.TableFamilyIPv4
}

// nftFilterPresent reports whether iptables-nft's filter table has a
// FORWARD chain here.
func nftFilterPresent(f Family) bool {
	if !NFTablesAvailable() {
		return false
	}
	c, done, err := nftConn()
	if err != nil {
		return false
	}
	defer done(nil)
	_, err = c.ListChain(&nftables.Table{Name: "filter", Family: nftFamily(f)}, "FORWARD")
	return err == nil
}

// nftHasAccepts reports whether iptables-nft's filter table already holds
// bridge's accept rules: FORWARD jumps to DNET-FORWARD, which has two
// rules with the network's comment. Only a shortcut for ADD; CHECK asks
// iptables itself.
func nftHasAccepts(f Family, spec ForwardSpec) bool {
	c, done, err := nftConn()
	if err != nil {
		return false
	}
	defer done(nil)
	table := &nftables.Table{Name: "filter", Family: nftFamily(f)}
	fwd, err := c.GetRules(table, &nftables.Chain{Name: "FORWARD", Table: table})
	if err != nil || !anyRule(fwd, func(r *nftables.Rule) bool { return jumpsTo(r, chainForward) }) {
		return false
	}
	ours, err := c.GetRules(table, &nftables.Chain{Name: chainForward, Table: table})
	if err != nil {
		return false
	}
	want, found := forwardComment(spec, false), 0
	for _, r := range ours {
		if ruleComment(r) == want {
			found++
		}
	}
	return found == len(forwardNetRules(spec, false))
}

// ruleComment is the text of an iptables-nft rule's comment: an xt
// comment match, or (as recent iptables-nft writes it) the rule's userdata
// comment attribute.
func ruleComment(r *nftables.Rule) string {
	for _, e := range r.Exprs {
		if m, ok := e.(*expr.Match); ok && m.Name == "comment" {
			if c, ok := m.Info.(*xt.Comment); ok {
				return string(*c)
			}
		}
	}
	// userdata is type-length-value; type 0 is the comment, NUL-terminated.
	for u := r.UserData; len(u) >= 2 && int(u[1])+2 <= len(u); u = u[2+int(u[1]):] {
		if u[0] == 0 {
			s, _, _ := strings.Cut(string(u[2:2+int(u[1])]), "\x00")
			return s
		}
	}
	return ""
}
