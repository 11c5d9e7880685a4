package nft

import (
	"net"
	"strings"
	"testing"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter/nft/nftfake"
	"github.com/dockernet/cni-plugins/plugins/pkg/testenv/golden"
)

// Everything here runs without root, against nftfake.Kernel.

func owner(id string) netfilter.Owner {
	return netfilter.Owner{Network: "net1", ContainerID: id, IfName: "eth0"}
}

// attachment is every kind of spec for one container address.
type attachment struct {
	ports netfilter.PortMapSpec
	masq  netfilter.MasqSpec
	fwd   netfilter.ForwardSpec
}

func specsFor(f netfilter.Family, id string) attachment {
	ip, subnet, bound, except := "10.66.0.2", "10.66.0.0/24", "127.0.0.1", []string{"10.66.0.0/16", "192.0.2.0/24"}
	if f == netfilter.IPv6 {
		ip, subnet, bound, except = "fd66::2", "fd66::/64", "::1", []string{"fd66::/48"}
	}
	o := owner(id)
	a := attachment{
		ports: netfilter.PortMapSpec{
			Owner: o, ContainerIP: net.ParseIP(ip), ContainerNet: cidr(subnet),
			SNAT: true, MasqAll: true, MarkBit: netfilter.DefaultMarkBit, HairpinIf: "br0",
			Mappings: []netfilter.PortMapping{
				{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
				{HostPort: 8053, ContainerPort: 53, Protocol: "udp", HostIP: net.ParseIP(bound)},
				{HostPort: 9000, ContainerPort: 9000, Protocol: "sctp"},
				{HostPort: 9443, ContainerPort: 443, Protocol: "tcp", Sources: []*net.IPNet{cidr("192.0.2.0/24"), cidr("2001:db8::/32")}},
			},
		},
		masq: netfilter.MasqSpec{Owner: o, IP: net.ParseIP(ip), Bridge: "br0"},
		fwd:  netfilter.ForwardSpec{Owner: o, IP: net.ParseIP(ip), Bridge: "br0", Protect: true, Isolate: true, NoICC: true, Trusted: []string{"wg0"}, Guard: true, Routed: true},
	}
	for _, e := range except {
		a.masq.Except = append(a.masq.Except, cidr(e))
	}
	return a
}

func (a attachment) add(b *Backend, tx *netfilter.Txn) {
	b.AddPortMappings(tx, a.ports)
	b.AddMasquerade(tx, a.masq)
	b.AddForward(tx, a.fwd)
}

func (a attachment) del(b *Backend, tx *netfilter.Txn) {
	b.DelPortMappings(tx, a.ports)
	b.DelMasquerade(tx, a.masq)
	b.DelForward(tx, a.fwd)
}

func (a attachment) check(b *Backend) error {
	if err := b.CheckPortMappings(a.ports); err != nil {
		return err
	}
	if err := b.CheckMasquerade(a.masq); err != nil {
		return err
	}
	return b.CheckForward(a.fwd)
}

// The table this backend builds, in each family, for every kind of
// element and rule, as the kernel would hold it: testdata/fake-<family>.golden.
// (layout_root_test.go compares the same with the real kernel's nft output.)
func TestLayoutWithoutRoot(t *testing.T) {
	for _, f := range netfilter.BothFamilies {
		t.Run(f.String(), func(t *testing.T) {
			k := nftfake.New()
			b := NewWithDial(f, k.Dial, nil)
			var tx netfilter.Txn
			specsFor(f, "golden").add(b, &tx)
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			if k.Batches() != 1 {
				t.Errorf("%d batches for one transaction, want 1", k.Batches())
			}
			if err := specsFor(f, "golden").check(b); err != nil {
				t.Errorf("CHECK after ADD: %v", err)
			}
			golden.Check(t, "fake-"+f.NFTName(), k.Render(byte(f.NFT()), Table))
		})
	}
}

// DEL removes exactly the attachment's elements, from its record or, with
// only the owner known, by the comment; another attachment's and the
// bridge's shared hairpin element stay; a second DEL changes nothing.
func TestDelWithAndWithoutRecord(t *testing.T) {
	k := nftfake.New()
	b := NewWithDial(netfilter.IPv4, k.Dial, nil)
	one, two := specsFor(netfilter.IPv4, "one"), specsFor(netfilter.IPv4, "two")
	two.ports.ContainerIP, two.masq.IP, two.fwd.IP = net.ParseIP("10.66.0.3"), net.ParseIP("10.66.0.3"), net.ParseIP("10.66.0.3")
	two.ports.Mappings = []netfilter.PortMapping{{HostPort: 8081, ContainerPort: 80, Protocol: "tcp"}}
	if err := netfilter.Do(func(tx *netfilter.Txn) { one.add(b, tx); two.add(b, tx) }); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		del  attachment
	}{
		{"from the record", one},
		{"again, nothing left", one},
	} {
		if err := netfilter.Do(func(tx *netfilter.Txn) { c.del.del(b, tx) }); err != nil {
			t.Fatalf("DEL %s: %v", c.name, err)
		}
	}
	if k.Refused() != 0 {
		t.Errorf("%d batches refused: a DEL from the record must name every element exactly", k.Refused())
	}
	state := k.Render(byte(netfilter.IPv4.NFT()), Table)
	if strings.Contains(state, "id=one ") || !strings.Contains(state, "id=two ") || !strings.Contains(state, `"dnet:base"`) {
		t.Errorf("after DEL of one:\n%s", state)
	}
	byTag := attachment{ports: netfilter.PortMapSpec{Owner: owner("two")}, masq: netfilter.MasqSpec{Owner: owner("two")}, fwd: netfilter.ForwardSpec{Owner: owner("two")}}
	if err := netfilter.Do(func(tx *netfilter.Txn) { byTag.del(b, tx) }); err != nil {
		t.Fatalf("DEL by tag: %v", err)
	}
	if state := k.Render(byte(netfilter.IPv4.NFT()), Table); strings.Contains(state, "id=two ") {
		t.Errorf("after DEL of two by its tag:\n%s", state)
	}
	// A DEL where no table was ever made sends nothing.
	empty := nftfake.New()
	if err := netfilter.Do(func(tx *netfilter.Txn) { one.del(NewWithDial(netfilter.IPv4, empty.Dial, nil), tx) }); err != nil || empty.Batches() > 1 {
		t.Errorf("DEL on an empty host: %v, %d batches", err, empty.Batches())
	}
}

// A port another container publishes refuses the batch; applied on their
// own, the other changes land and the error names the port's owner.
func TestConflictNamesTheOwner(t *testing.T) {
	k := nftfake.New()
	b := NewWithDial(netfilter.IPv4, k.Dial, nil)
	first := specsFor(netfilter.IPv4, "first")
	if err := netfilter.Do(func(tx *netfilter.Txn) { first.add(b, tx) }); err != nil {
		t.Fatal(err)
	}
	second := specsFor(netfilter.IPv4, "second")
	second.ports.ContainerIP = net.ParseIP("10.66.0.9")
	second.masq.IP, second.fwd.IP = second.ports.ContainerIP, second.ports.ContainerIP
	err := netfilter.Do(func(tx *netfilter.Txn) {
		b.DelMasquerade(tx, first.masq)
		b.AddPortMappings(tx, second.ports)
	})
	if err == nil || !strings.Contains(err.Error(), "host port 8080/tcp on 0.0.0.0 is already published by container first (network net1)") {
		t.Errorf("conflicting ADD: %v", err)
	}
	if k.Refused() != 2 {
		t.Errorf("%d refused batches, want 2: the transaction's, and the conflicting change's on its own", k.Refused())
	}
	if b.CheckMasquerade(first.masq) == nil {
		t.Error("the deletion queued beside the conflict did not land")
	}
	if err := b.CheckPortMappings(first.ports); err != nil {
		t.Errorf("the first container's ports after the conflict: %v", err)
	}
}

// CHECK names what is missing; a key this backend does not implement is
// refused before anything is sent.
func TestCheckAndUnsupportedKeys(t *testing.T) {
	k := nftfake.New()
	b := NewWithDial(netfilter.IPv4, k.Dial, nil)
	a := specsFor(netfilter.IPv4, "c")
	if err := b.CheckMasquerade(a.masq); err == nil || !strings.Contains(err.Error(), "table dnet is incomplete") {
		t.Errorf("CHECK with no table: %v", err)
	}
	if err := netfilter.Do(func(tx *netfilter.Txn) { a.add(b, tx) }); err != nil {
		t.Fatal(err)
	}
	if !k.DropFirstElement(byte(netfilter.IPv4.NFT()), Table, SetGuardProtect) {
		t.Fatal("no guard_protect element to drop")
	}
	if err := b.CheckForward(a.fwd); err == nil || !strings.Contains(err.Error(), "missing from guard_protect") {
		t.Errorf("CHECK with the protect element gone: %v", err)
	}
	batches := k.Batches()
	a.ports.Conditions = []string{"-m", "comment", "--comment", "x"}
	err := netfilter.Do(func(tx *netfilter.Txn) { b.AddPortMappings(tx, a.ports) })
	if err == nil || !strings.Contains(err.Error(), "conditionsV4/conditionsV6") || k.Batches() != batches {
		t.Errorf("conditions on nftables: %v after %d batches", err, k.Batches()-batches)
	}
}

func cidr(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}
