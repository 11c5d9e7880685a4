package ipt

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

	"github.com/dockernet/cni-plugins/plugins/pkg/filelock"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// flavour is one iptables implementation: nf_tables-backed or legacy.
type flavour struct {
	name    string
	binary  string                                                    // "iptables-nft" or "iptables-legacy" (ip6tables-... for netfilter.IPv6)
	present func(f netfilter.Family) bool                             // its filter table exists in this netns
	probe   func(f netfilter.Family, spec netfilter.ForwardSpec) bool // cheap "already accepted" check, or nil
}

func flavours() []flavour {
	return []flavour{
		{name: "nft", binary: "nft", present: nftFilterPresent, probe: nftHasAccepts},
		{name: "legacy", binary: "legacy", present: legacyFilterPresent},
	}
}

// flavourTables returns the iptables backend of flavour fl for family f.
func flavourTables(fl flavour, f netfilter.Family, opts netfilter.Options) (*Backend, error) {
	save, err1 := exec.LookPath(f.IPTables() + "-" + fl.binary + "-save")
	restore, err2 := exec.LookPath(f.IPTables() + "-" + fl.binary + "-restore")
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	return &Backend{family: f, save: save, restore: restore, lockPath: opts.Lock(), nftBacked: fl.name == "nft"}, nil
}

// Accepts is the netfilter.ForwardAccepts of iptables: a network's accept
// rules in every iptables flavour with a filter table here, so that its
// FORWARD policy or rules cannot drop what another backend (nftables)
// lets through.
type Accepts struct{ Opts netfilter.Options }

// Ensure adds bridge's accepts where they are missing.
func (a Accepts) Ensure(f netfilter.Family, bridge string) error {
	opts := a.Opts
	spec := netfilter.ForwardSpec{Bridge: bridge}
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

// Probe checks, in each flavour with a filter table, the jump from FORWARD
// to the accepts: what iptables -F removes. The node agent's cheap test.
func (a Accepts) Probe(f netfilter.Family) error {
	return a.eachFlavour(f, func(fl flavour, ipt *Backend) error {
		if err := ipt.ProbeBase(netfilter.BaseKinds{Forward: true}); err != nil {
			return fmt.Errorf("the accepts in iptables-%s: %v", fl.name, err)
		}
		return nil
	})
}

// eachFlavour runs do with the backend of each flavour whose filter table
// exists here, until one fails.
func (a Accepts) eachFlavour(f netfilter.Family, do func(fl flavour, ipt *Backend) error) error {
	for _, fl := range flavours() {
		if !fl.present(f) {
			continue
		}
		ipt, err := flavourTables(fl, f, a.Opts)
		if err != nil {
			return err
		}
		if err := do(fl, ipt); err != nil {
			return err
		}
	}
	return nil
}

// Check verifies what Ensure installs.
func (a Accepts) Check(f netfilter.Family, bridge string) error {
	return a.eachFlavour(f, func(fl flavour, ipt *Backend) error {
		if err := ipt.checkForward(netfilter.ForwardSpec{Bridge: bridge}, false); err != nil {
			return fmt.Errorf("iptables-%s: %w", fl.name, err)
		}
		return nil
	})
}

// legacyFilterPresent reads the legacy tables this netns has loaded.
func legacyFilterPresent(f netfilter.Family) bool { return LegacyTablePresent(f, "filter") }

// LegacyTablePresent reports whether iptables-legacy's table is loaded here.
func LegacyTablePresent(f netfilter.Family, table string) bool {
	name := "/proc/thread-self/net/ip_tables_names" // the calling thread's netns
	if f == netfilter.IPv6 {
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

// nftFilterPresent reports whether iptables-nft's filter table has a
// FORWARD chain here.
func nftFilterPresent(f netfilter.Family) bool {
	if !netfilter.NFTablesAvailable() {
		return false
	}
	c, done, err := netfilter.NFTConn()
	if err != nil {
		return false
	}
	defer done(nil)
	_, err = c.ListChain(&nftables.Table{Name: "filter", Family: f.NFT()}, "FORWARD")
	return err == nil
}

// nftHasAccepts reports whether iptables-nft's filter table already holds
// bridge's accept rules: something jumps to DNET-FORWARD (only FORWARD's
// rule of ours does; a flush of FORWARD takes it), which has two rules
// with the network's comment. The jump is read off the kernel's use count
// of DNET-FORWARD (its rules and the jumps to it), and DNET-FORWARD's
// rules are read for their comments alone, so nothing of FORWARD's
// (kube-proxy's, flannel's rules) is dumped and no rule decoded whole at
// every ADD. Only a shortcut for ADD; CHECK asks iptables itself.
func nftHasAccepts(f netfilter.Family, spec netfilter.ForwardSpec) bool {
	c, done, err := netfilter.NFTConn()
	if err != nil {
		return false
	}
	defer done(nil)
	use, err := c.ChainUse(f.NFT(), "filter", ChainForward)
	if err != nil {
		return false
	}
	comments, err := nftRuleComments(c, f, "filter", ChainForward)
	if err != nil || use[ChainForward] <= uint32(len(comments)) {
		return false
	}
	want, found := forwardComment(spec, false), 0
	for _, comment := range comments {
		if comment == want {
			found++
		}
	}
	return found == len(forwardNetRules(spec, false))
}

// RuleComment is the text of an iptables-nft rule's comment: an xt
// comment match, or (as recent iptables-nft writes it) the rule's userdata
// comment attribute.
func RuleComment(r *nftables.Rule) string {
	for _, e := range r.Exprs {
		if m, ok := e.(*expr.Match); ok && m.Name == "comment" {
			if c, ok := m.Info.(*xt.Comment); ok {
				return string(*c)
			}
		}
	}
	return userdataComment(r.UserData)
}

// Remove deletes bridge's accepts from every flavour that holds them.
func (a Accepts) Remove(f netfilter.Family, bridge string) error {
	return a.eachFlavour(f, func(fl flavour, ipt *Backend) error {
		if err := ipt.removeNetwork(bridge, []string{"filter"}); err != nil {
			return fmt.Errorf("iptables-%s: %w", fl.name, err)
		}
		return nil
	})
}

// nftDelNetworkRules deletes, over netlink and in one batch, every rule
// of bridge's network in our chains of iptables-nft's table, found by its
// comment, under the lock that serialises iptables edits: DelNetwork
// without starting iptables-save and iptables-restore. No table, chain or
// rule is not an error.
func (b *Backend) nftDelNetworkRules(table, bridge string) error {
	lk, err := filelock.Acquire(b.lockPath)
	if err != nil {
		return err
	}
	defer lk.Release()
	c, done, err := netfilter.NFTConn()
	if err != nil {
		return err
	}
	t := &nftables.Table{Name: table, Family: b.family.NFT()}
	prefix, n := ForwardTag(bridge), 0
	for _, chain := range ourChains[table] {
		rules, err := c.GetRules(t, &nftables.Chain{Name: chain, Table: t})
		if err != nil {
			continue // no such chain
		}
		for _, r := range rules {
			if strings.HasPrefix(RuleComment(r), prefix) {
				if err := c.DelRule(r); err != nil {
					done(err)
					return err
				}
				n++
			}
		}
	}
	if n == 0 {
		done(nil)
		return nil
	}
	err = c.Flush()
	done(err)
	return err
}

// nftHasComment reports whether iptables-nft's chain in table holds a
// rule with exactly comment; unsure is no.
func (b *Backend) nftHasComment(table, chain, comment string) bool {
	c, done, err := netfilter.NFTConn()
	if err != nil {
		return false
	}
	defer done(nil)
	t := &nftables.Table{Name: table, Family: b.family.NFT()}
	rules, err := c.GetRules(t, &nftables.Chain{Name: chain, Table: t})
	return err == nil && anyRule(rules, func(r *nftables.Rule) bool { return RuleComment(r) == comment })
}

// nftHasNetworkRules reports, over netlink, whether one of our chains in
// iptables-nft's table holds a rule of bridge's network. Unsure (a
// netlink error) is yes.
func (b *Backend) nftHasNetworkRules(table, bridge string) bool {
	c, done, err := netfilter.NFTConn()
	if err != nil {
		return true
	}
	defer done(nil)
	t := &nftables.Table{Name: table, Family: b.family.NFT()}
	prefix := ForwardTag(bridge)
	for _, chain := range ourChains[table] {
		rules, err := c.GetRules(t, &nftables.Chain{Name: chain, Table: t})
		if err != nil {
			continue // no such chain
		}
		if anyRule(rules, func(r *nftables.Rule) bool { return strings.HasPrefix(RuleComment(r), prefix) }) {
			return true
		}
	}
	return false
}
