package nft

import (
	"net"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
	"github.com/dockernet/cni-plugins/plugins/pkg/testenv/golden"
)

// TestNFTablesLayout pins the nftables table (chains, maps, sets,
// priorities, rules) after one portmap ADD, one masquerade and the
// forwarding elements of two networks to testdata/nft-ip-dnet.golden.
func TestNFTablesLayout(t *testing.T) {
	testenv.RequireRoot(t)
	host := testenv.NewNS(t, testenv.Prefix()+"-host")
	spec := netfilter.PortMapSpec{
		Owner:       netfilter.Owner{Network: "net1", ContainerID: "golden", IfName: "eth0"},
		ContainerIP: net.ParseIP("10.66.0.2"), ContainerNet: cidr("10.66.0.0/24"),
		SNAT: true, MarkBit: netfilter.DefaultMarkBit, HairpinIf: "br0",
		Mappings: []netfilter.PortMapping{
			{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
			{HostPort: 8053, ContainerPort: 53, Protocol: "udp", HostIP: net.ParseIP("127.0.0.1")},
		},
	}
	err := ns.WithNetNSPath(host.Path(), func(ns.NetNS) error {
		b, err := New(netfilter.IPv4, nil)
		if err != nil {
			return err
		}
		add := func(queue func(tx *netfilter.Txn)) error { return netfilter.Do(queue) }
		if err := add(func(tx *netfilter.Txn) { b.AddPortMappings(tx, spec) }); err != nil {
			return err
		}
		masq := netfilter.MasqSpec{Owner: spec.Owner, IP: spec.ContainerIP, Bridge: "br0", Except: []*net.IPNet{cidr("10.66.0.0/16"), cidr("192.0.2.0/24")}}
		if err := add(func(tx *netfilter.Txn) { b.AddMasquerade(tx, masq) }); err != nil {
			return err
		}
		// A re-ADD adds the same elements again.
		if err := add(func(tx *netfilter.Txn) { b.AddMasquerade(tx, masq) }); err != nil {
			return err
		}
		if err := b.CheckMasquerade(masq); err != nil {
			return err
		}
		other := netfilter.Owner{Network: "net2", ContainerID: "golden", IfName: "eth0"}
		return add(func(tx *netfilter.Txn) {
			b.AddForward(tx, netfilter.ForwardSpec{Owner: spec.Owner, IP: spec.ContainerIP, Bridge: "br0", Protect: true, Isolate: true})
			b.AddForward(tx, netfilter.ForwardSpec{Owner: other, IP: net.ParseIP("10.67.0.2"), Bridge: "br1", NoICC: true})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "nft-ip-dnet", host.MustRun("nft", "list", "table", "ip", "dnet"))
}

// TestMissingSeesAPartialFlush: the base check of every ADD reads each
// chain's use count (its rules and the jumps to it). A flush of any one
// base chain or filter hook (what a partial reload does) must be named,
// and the next ADD, one that needs no hook too, must put the chain's
// rules back; the intact base is the control.
func TestMissingSeesAPartialFlush(t *testing.T) {
	testenv.RequireRoot(t)
	spec := netfilter.MasqSpec{Owner: netfilter.Owner{Network: "n", ContainerID: "c", IfName: "eth0"}, IP: net.ParseIP("10.66.0.2"), Bridge: "br0"}
	// A protected container's elements: the filter hooks are there too.
	protected := netfilter.ForwardSpec{Owner: netfilter.Owner{Network: "p", ContainerID: "p", IfName: "eth0"}, IP: net.ParseIP("10.67.0.2"), Bridge: "br1", Protect: true}
	for _, name := range append(baseChainNames(), hookChainNames()...) {
		ch := chainSpec{name: name}
		t.Run(ch.name, func(t *testing.T) {
			host := testenv.NewNS(t, testenv.Prefix()+"-host")
			err := ns.WithNetNSPath(host.Path(), func(ns.NetNS) error {
				b, err := New(netfilter.IPv4, nil)
				if err != nil {
					return err
				}
				add := func() error { return netfilter.Do(func(tx *netfilter.Txn) { b.AddMasquerade(tx, spec) }) }
				missing := func() string {
					c, done, err := netfilter.NFTConn()
					if err != nil {
						t.Fatal(err)
					}
					defer done(nil)
					what, _ := newLayout(netfilter.IPv4).missing(c)
					return what
				}
				if err := netfilter.Do(func(tx *netfilter.Txn) { b.AddForward(tx, protected) }); err != nil {
					return err
				}
				if err := add(); err != nil {
					return err
				}
				if m := missing(); m != "" {
					t.Errorf("intact base: missing says %q", m)
				}
				host.MustRun("nft", "flush", "chain", "ip", Table, ch.name)
				if m, want := missing(), "chain "+ch.name; m != want {
					t.Errorf("after flushing %s: missing says %q, want %q", ch.name, m, want)
				}
				netfilter.ForgetKnown() // a new plugin process knows nothing
				if err := add(); err != nil {
					return err
				}
				if m := missing(); m != "" {
					t.Errorf("the next ADD left %q missing", m)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
