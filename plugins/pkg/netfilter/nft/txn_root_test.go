package nft

import (
	"net"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// A transaction commits what it queued as one batch; when the kernel
// refuses the batch, each change is applied on its own, so the error is
// the precise one and the other changes still land.
func TestTxnWithTheKernel(t *testing.T) {
	testenv.RequireRoot(t)
	host := testenv.NewNS(t, testenv.Prefix()+"-host")
	o := netfilter.Owner{Network: "net", ContainerID: "batch", IfName: "eth0"}
	masq := netfilter.MasqSpec{Owner: o, IP: net.ParseIP("10.66.0.2"), Bridge: "br0"}
	fwd := netfilter.ForwardSpec{Owner: o, IP: net.ParseIP("10.66.0.2"), Bridge: "br0", Protect: true}
	pm := func(id, ip string) netfilter.PortMapSpec {
		return netfilter.PortMapSpec{Owner: netfilter.Owner{Network: "net", ContainerID: id, IfName: "eth0"}, ContainerIP: net.ParseIP(ip),
			Mappings: []netfilter.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}}
	}
	err := ns.WithNetNSPath(host.Path(), func(ns.NetNS) error {
		b, err := New(netfilter.IPv4, nil)
		if err != nil {
			return err
		}
		var tx netfilter.Txn
		b.AddMasquerade(&tx, masq)
		b.AddForward(&tx, fwd)
		if err := tx.Commit(); err != nil {
			t.Fatalf("a transaction of two adds: %v", err)
		}
		if err := b.CheckMasquerade(masq); err != nil {
			t.Errorf("after the transaction: %v", err)
		}
		if err := b.CheckForward(fwd); err != nil {
			t.Errorf("after the transaction: %v", err)
		}
		// A DEL from the record is one batch the kernel takes, interval
		// elements (nonMasqueradeCIDRs) included.
		withExcept := masq
		withExcept.Owner.ContainerID = "except"
		withExcept.Except = []*net.IPNet{cidr("10.66.0.0/16")}
		if err := netfilter.Do(func(tx *netfilter.Txn) { b.AddMasquerade(tx, withExcept) }); err != nil {
			return err
		}
		var del netfilter.Txn
		b.DelMasquerade(&del, withExcept)
		p := b.part(&del)
		c, done, err := b.dial()
		if err != nil {
			return err
		}
		err = p.apply(c, p.ops)
		done(err)
		if err != nil {
			t.Errorf("the kernel refused a DEL batch from the record: %v", err)
		}
		// A refused batch: the second mapping's port is taken.
		if err := netfilter.Do(func(tx *netfilter.Txn) { b.AddPortMappings(tx, pm("first", "10.66.0.3")) }); err != nil {
			return err
		}
		b.DelMasquerade(&tx, masq)
		b.AddPortMappings(&tx, pm("second", "10.66.0.4"))
		err = tx.Commit()
		if err == nil || !strings.Contains(err.Error(), "already published by container first") {
			t.Errorf("refused batch: %v, want the conflict named", err)
		}
		// Applied on its own, the deletion landed.
		if b.CheckMasquerade(masq) == nil {
			t.Error("the deletion did not land after the refused batch")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A thousand-entry allowlist is one transaction the kernel takes: its
// elements go a few hundred to a message, not one message (and one ack)
// each, which overflowed the socket buffer.
func TestLargeAllowlistWithTheKernel(t *testing.T) {
	testenv.RequireRoot(t)
	host := testenv.NewNS(t, testenv.Prefix()+"-host")
	m := netfilter.PortMapping{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}
	for i := 0; i < 1000; i++ {
		m.Sources = append(m.Sources, &net.IPNet{IP: net.IPv4(10, byte(i>>8), byte(i), 0).To4(), Mask: net.CIDRMask(24, 32)})
	}
	spec := netfilter.PortMapSpec{Owner: netfilter.Owner{Network: "net", ContainerID: "big", IfName: "eth0"},
		ContainerIP: net.ParseIP("10.66.0.2"), Mappings: []netfilter.PortMapping{m}}
	err := ns.WithNetNSPath(host.Path(), func(ns.NetNS) error {
		b, err := New(netfilter.IPv4, nil)
		if err != nil {
			return err
		}
		if err := netfilter.Do(func(tx *netfilter.Txn) { b.AddPortMappings(tx, spec) }); err != nil {
			return err
		}
		if err := b.CheckPortMappings(spec); err != nil {
			return err
		}
		return netfilter.Do(func(tx *netfilter.Txn) { b.DelPortMappings(tx, spec) })
	})
	if err != nil {
		t.Fatal(err)
	}
	if out := host.MustRun("nft", "list", "set", "ip", "dnet", "src_allowed"); strings.Contains(out, "10.0.") {
		t.Errorf("elements left after DEL:\n%s", out)
	}
}
