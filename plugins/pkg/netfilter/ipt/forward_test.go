package ipt

import (
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"

	"net"
	"regexp"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
	"github.com/dockernet/cni-plugins/plugins/pkg/testenv/golden"
)

func fwdSpec(bridge, ip string, protect, isolate, noICC bool) netfilter.ForwardSpec {
	addr := net.ParseIP(ip)
	return netfilter.ForwardSpec{Owner: netfilter.Owner{Network: bridge, ContainerID: "c-" + ip, IfName: "eth0"},
		IP: addr, Bridge: bridge, Subnet: &net.IPNet{IP: addr.Mask(net.CIDRMask(24, 32)), Mask: net.CIDRMask(24, 32)},
		Protect: protect, Isolate: isolate, NoICC: noICC}
}

// savedFilter is the filter table without counters and header comments.
func savedFilter(t *testing.T, host *testenv.NS, flavour string) string {
	return savedTable(t, host, flavour, "filter")
}

func savedTable(t *testing.T, host *testenv.NS, flavour, table string) string {
	out := host.MustRun("iptables-"+flavour+"-save", "-t", table)
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, "#") {
			keep = append(keep, regexp.MustCompile(` \[\d+:\d+\]$`).ReplaceAllString(l, ""))
		}
	}
	return strings.Join(keep, "\n")
}

// A network whose isolation and icc rules an earlier release put in the
// filter table, after another firewall's FORWARD chain, has them moved to
// mangle FORWARD by its next ADD, where no filter ACCEPT comes first.
func TestForwardMovesFilterDropsToMangle(t *testing.T) {
	testenv.RequireRoot(t)
	for _, fl := range flavours() {
		t.Run(fl.name, func(t *testing.T) {
			host := testenv.NewNS(t, testenv.Prefix()+"-host")
			spec := fwdSpec("br1", "10.2.0.2", false, true, true)
			c := `-m comment --comment "dnet:fwd br=br1 drops=isolate,noicc"`
			old := "*filter\n:DNET-FORWARD - [0:0]\n:DNET-FILTER - [0:0]\n:DNET-ISOLATE - [0:0]\n" +
				"-A FORWARD -m comment --comment dnet:base -j DNET-FORWARD\n" +
				"-A DNET-FORWARD -m comment --comment dnet:base -j DNET-FILTER\n" +
				"-A DNET-FORWARD -i br1 " + c + " -j ACCEPT\n" +
				"-A DNET-FILTER -i br1 ! -o br1 " + c + " -j DNET-ISOLATE\n" +
				"-A DNET-FILTER -i br1 -o br1 -m conntrack ! --ctstate DNAT " + c + " -j DROP\n" +
				"-A DNET-ISOLATE -o br1 -m conntrack ! --ctstate DNAT " + c + " -j DROP\nCOMMIT\n"
			host.MustRun("sh", "-c", "printf '%s' '"+old+"' | iptables-"+fl.binary+"-restore --noflush")
			err := ns.WithNetNSPath(host.Path(), func(ns.NetNS) error {
				b, err := flavourTables(fl, netfilter.IPv4, netfilter.Options{LockPath: t.TempDir() + "/lock"})
				if err != nil {
					return err
				}
				return b.ensureForward(spec, true)
			})
			if err != nil {
				t.Fatal(err)
			}
			filter, mangle := savedFilter(t, host, fl.binary), savedTable(t, host, fl.binary, "mangle")
			for _, chain := range []string{ChainFilter, ChainIsolate} {
				if strings.Contains(filter, "-A "+chain+" -i br1") || strings.Contains(filter, "-A "+chain+" -o br1") {
					t.Errorf("br1's rules stayed in filter %s:\n%s", chain, filter)
				}
				if !strings.Contains(mangle, "-A "+chain+" ") {
					t.Errorf("br1's rules are not in mangle %s:\n%s", chain, mangle)
				}
			}
			if !strings.Contains(mangle, "-A FORWARD -m comment --comment \"dnet:base\" -j DNET-FILTER") {
				t.Errorf("no jump from mangle FORWARD:\n%s", mangle)
			}
		})
	}
}

// The iptables backend's filter half, in both flavours: per-network rules
// after the host's own, idempotent, replaced when a network's settings
// change, and CHECK names a missing rule.
func TestForwardIPTables(t *testing.T) {
	testenv.RequireRoot(t)
	for _, fl := range flavours() {
		t.Run(fl.name, func(t *testing.T) {
			host := testenv.NewNS(t, testenv.Prefix()+"-host")
			// A host rule and a DROP policy that must stay first and untouched.
			host.MustRun("iptables-"+fl.binary, "-P", "FORWARD", "DROP")
			host.MustRun("iptables-"+fl.binary, "-A", "FORWARD", "-i", "eth9", "-j", "ACCEPT")
			err := ns.WithNetNSPath(host.Path(), func(ns.NetNS) error {
				b, err := flavourTables(fl, netfilter.IPv4, netfilter.Options{LockPath: t.TempDir() + "/lock"})
				if err != nil {
					return err
				}
				for _, s := range []netfilter.ForwardSpec{
					fwdSpec("br0", "10.1.0.2", true, true, false),
					fwdSpec("br0", "10.1.0.3", true, true, false), // same network: nothing new
					fwdSpec("br1", "10.2.0.2", false, true, true),
				} {
					if err := b.ensureForward(s, true); err != nil {
						return err
					}
				}
				golden.Check(t, "forward-iptables-"+fl.name, savedTable(t, host, fl.binary, "raw")+savedTable(t, host, fl.binary, "mangle")+savedFilter(t, host, fl.binary))
				if err := b.CheckForward(fwdSpec("br1", "10.2.0.2", false, true, true)); err != nil {
					t.Errorf("CHECK after ADD: %v", err)
				}
				// Settings changed: the network's rules are replaced, not added to.
				if err := b.ensureForward(fwdSpec("br1", "10.2.0.2", true, false, false), true); err != nil {
					return err
				}
				saved := savedFilter(t, host, fl.binary)
				if strings.Contains(saved, "br=br1 drops=isolate,noicc") || !strings.Contains(saved, "br=br1 drops=protect") {
					t.Errorf("br1's rules were not replaced:\n%s", saved)
				}
				host.MustRun("iptables-"+fl.binary, "-t", "mangle", "-F", ChainIsolate)
				err = b.CheckForward(fwdSpec("br0", "10.1.0.2", true, true, false))
				if err == nil || !strings.Contains(err.Error(), "missing from chain "+ChainIsolate) {
					t.Errorf("CHECK with DNET-ISOLATE flushed: %v", err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
