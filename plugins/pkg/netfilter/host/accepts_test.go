package host

import (
	"net"
	"regexp"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter/ipt"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter/nft"
	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
	"github.com/dockernet/cni-plugins/plugins/pkg/testenv/golden"
)

// filterPresent reports whether the iptables flavour's filter table
// exists in host, without loading it.
func filterPresent(host *testenv.NS, flavour string) bool {
	if flavour == "legacy" {
		out, _ := host.Run("cat", "/proc/net/ip_tables_names")
		return strings.Contains(out, "filter")
	}
	_, err := host.Run("nft", "list", "chain", "ip", "filter", "FORWARD")
	return err == nil
}

// savedFilter is the flavour's filter table without counters and header comments.
func savedFilter(t *testing.T, host *testenv.NS, flavour string) string {
	var keep []string
	for _, l := range strings.Split(host.MustRun("iptables-"+flavour+"-save", "-t", "filter"), "\n") {
		if !strings.HasPrefix(l, "#") {
			keep = append(keep, regexp.MustCompile(` \[\d+:\d+\]$`).ReplaceAllString(l, ""))
		}
	}
	return strings.Join(keep, "\n")
}

// The nftables backend, wired to ipt.Accepts as New wires it, adds accept
// rules to an iptables flavour only where that flavour's filter table
// exists: the seam between the two backends, with the kernel.
func TestNFTablesAcceptsInIPTables(t *testing.T) {
	testenv.RequireRoot(t)
	for _, fl := range []string{"nft", "legacy"} {
		t.Run(fl, func(t *testing.T) {
			host := testenv.NewNS(t, testenv.Prefix()+"-host")
			spec := netfilter.ForwardSpec{Owner: netfilter.Owner{Network: "br0", ContainerID: "c-10.1.0.2", IfName: "eth0"},
				IP: net.ParseIP("10.1.0.2"), Bridge: "br0", Protect: true, Isolate: true}
			err := ns.WithNetNSPath(host.Path(), func(ns.NetNS) error {
				b, err := nft.New(netfilter.IPv4, ipt.Accepts{Opts: netfilter.Options{LockPath: t.TempDir() + "/lock"}})
				if err != nil {
					return err
				}
				add := func() error { return netfilter.Do(func(tx *netfilter.Txn) { b.AddForward(tx, spec) }) }
				if err := add(); err != nil {
					return err
				}
				if filterPresent(host, fl) {
					t.Errorf("ADD on a host without an iptables filter table created one (%s)", fl)
				}
				host.MustRun("iptables-"+fl, "-P", "FORWARD", "DROP")
				if err := add(); err != nil {
					return err
				}
				if err := b.CheckForward(spec); err != nil {
					t.Errorf("CHECK: %v\n%s", err, host.MustRun("nft", "list", "table", "ip", "dnet"))
				}
				golden.Check(t, "forward-accepts-"+fl, savedFilter(t, host, fl))
				// A partial flush, of our chain or of the jump to it: CHECK
				// sees it, and the next ADD's shortcut (nftables' use count
				// of DNET-FORWARD) does not take it for intact.
				for _, chain := range []string{ipt.ChainForward, "FORWARD"} {
					host.MustRun("iptables-"+fl, "-F", chain)
					if err := b.CheckForward(spec); err == nil {
						t.Errorf("CHECK passed with %s flushed", chain)
					}
					if err := add(); err != nil {
						return err
					}
					if err := b.CheckForward(spec); err != nil {
						t.Errorf("after %s was flushed, the next ADD left: %v", chain, err)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
