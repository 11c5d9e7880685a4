package ipt

import (
	"os/exec"
	"slices"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/google/nftables"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// nftRuleComments reads the comments real iptables-nft stored, as
// RuleComment finds them in google/nftables' decoding; nftHasAccepts
// says yes to the accepts as ensureForward writes them, and no to each
// partial flush or deletion and to another network's.
func TestNFTHasAcceptsAgainstIPTablesNFT(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := exec.LookPath("iptables-nft-restore"); err != nil {
		t.Fatalf("iptables-nft-restore: %v (scripts/install-deps.sh installs iptables)", err)
	}
	spec := netfilter.ForwardSpec{Bridge: "br0"}
	cases := []struct {
		name  string
		after [][]string // iptables-nft commands after ensureForward
		spec  netfilter.ForwardSpec
		want  bool
	}{
		{"as written", nil, spec, true},
		{"with others' rules", [][]string{{"-I", "FORWARD", "1", "-s", "10.9.0.0/16", "-m", "comment", "--comment", "kube", "-j", "ACCEPT"}, {"-A", "FORWARD", "-d", "10.9.0.0/16", "-j", "ACCEPT"}}, spec, true},
		{"another network's", nil, netfilter.ForwardSpec{Bridge: "br1"}, false},
		{"DNET-FORWARD flushed", [][]string{{"-F", ChainForward}}, spec, false},
		{"FORWARD flushed", [][]string{{"-F", "FORWARD"}}, spec, false},
		{"one accept deleted", [][]string{{"-D", ChainForward, "1"}}, spec, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			host := testenv.NewNS(t, testenv.Prefix()+"-host")
			err := ns.WithNetNSPath(host.Path(), func(ns.NetNS) error {
				b, err := flavourTables(flavours()[0], netfilter.IPv4, netfilter.Options{LockPath: t.TempDir() + "/lock"})
				if err != nil {
					return err
				}
				return b.ensureForward(spec, false)
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, args := range c.after {
				host.MustRun(append([]string{"iptables-nft"}, args...)...)
			}
			_ = ns.WithNetNSPath(host.Path(), func(ns.NetNS) error {
				if got := nftHasAccepts(netfilter.IPv4, c.spec); got != c.want {
					t.Errorf("nftHasAccepts = %v, want %v, for:\n%s", got, c.want, host.MustRun("iptables-nft-save", "-t", "filter"))
				}
				conn, done, err := netfilter.NFTConn()
				if err != nil {
					t.Fatal(err)
				}
				defer done(nil)
				table := &nftables.Table{Name: "filter", Family: nftables.TableFamilyIPv4}
				for _, chain := range []string{"FORWARD", ChainForward} {
					rules, err := conn.GetRules(table, &nftables.Chain{Name: chain, Table: table})
					if err != nil {
						t.Fatal(err)
					}
					var want []string
					for _, r := range rules {
						want = append(want, RuleComment(r))
					}
					got, err := nftRuleComments(conn, netfilter.IPv4, "filter", chain)
					if err != nil || !slices.Equal(got, want) {
						t.Errorf("%s: comments %q (%v), decoded %q", chain, got, err, want)
					}
				}
				return nil
			})
		})
	}
}
