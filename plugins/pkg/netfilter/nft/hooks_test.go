package nft

import (
	"net"
	"testing"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter/nft/nftfake"
)

// hooksOn counts the filter hooks the fake kernel holds, and the
// base's state.
func hooksOn(t *testing.T, k *nftfake.Kernel, f netfilter.Family) int {
	t.Helper()
	c, done, err := k.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer done(nil)
	what, hooks := newLayout(f).missing(c)
	if what != "" {
		t.Fatalf("base incomplete: %s", what)
	}
	return hooks
}

// TestHooksFollowFilterElements: the filter hooks are there exactly
// while an element needs them, whatever order attachments come and go
// in; a Kubernetes-like attachment (members and masquerade only) never
// brings them.
func TestHooksFollowFilterElements(t *testing.T) {
	ip := net.ParseIP("10.66.0.2")
	// A Kubernetes pod's: members and masquerade only.
	fwd := netfilter.ForwardSpec{Owner: owner("k"), IP: ip, Bridge: "cni0"}
	masq := netfilter.MasqSpec{Owner: owner("k"), IP: ip, Bridge: "cni0"}
	k8s := func(b *Backend, tx *netfilter.Txn, add bool) {
		if add {
			b.AddForward(tx, fwd)
			b.AddMasquerade(tx, masq)
		} else {
			b.DelForward(tx, fwd)
			b.DelMasquerade(tx, masq)
		}
	}
	with := func(id string, change func(*netfilter.ForwardSpec, *netfilter.PortMapSpec)) func(*Backend, *netfilter.Txn, bool) {
		o := owner(id)
		fwd := netfilter.ForwardSpec{Owner: o, IP: net.ParseIP("10.66.0.3"), Bridge: "br0"}
		ports := netfilter.PortMapSpec{Owner: o, ContainerIP: fwd.IP, ContainerNet: cidr("10.66.0.0/24"), MarkBit: netfilter.DefaultMarkBit}
		change(&fwd, &ports)
		return func(b *Backend, tx *netfilter.Txn, add bool) {
			if add {
				b.AddForward(tx, fwd)
				if len(ports.Mappings) > 0 {
					b.AddPortMappings(tx, ports)
				}
			} else {
				b.DelForward(tx, fwd)
				if len(ports.Mappings) > 0 {
					b.DelPortMappings(tx, ports)
				}
			}
		}
	}
	port := netfilter.PortMapping{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}
	for _, c := range []struct {
		name  string
		other func(*Backend, *netfilter.Txn, bool)
	}{
		{"protected", with("p", func(f *netfilter.ForwardSpec, _ *netfilter.PortMapSpec) { f.Protect = true })},
		{"isolated", with("i", func(f *netfilter.ForwardSpec, _ *netfilter.PortMapSpec) { f.Isolate = true })},
		{"icc off", with("n", func(f *netfilter.ForwardSpec, _ *netfilter.PortMapSpec) { f.NoICC = true })},
		{"forwarding guard", with("g", func(f *netfilter.ForwardSpec, _ *netfilter.PortMapSpec) { f.Guard = true })},
		{"published port", with("h", func(_ *netfilter.ForwardSpec, p *netfilter.PortMapSpec) {
			p.Mappings = []netfilter.PortMapping{port}
		})},
		{"allowlist", with("s", func(_ *netfilter.ForwardSpec, p *netfilter.PortMapSpec) {
			m := port
			m.Sources = []*net.IPNet{cidr("192.0.2.0/24")}
			p.Mappings = []netfilter.PortMapping{m}
		})},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := nftfake.New()
			b := NewWithDial(netfilter.IPv4, k.Dial, nil)
			do := func(change func(*Backend, *netfilter.Txn, bool), add bool) {
				t.Helper()
				if err := netfilter.Do(func(tx *netfilter.Txn) { change(b, tx, add) }); err != nil {
					t.Fatal(err)
				}
			}
			do(k8s, true)
			if n := hooksOn(t, k, netfilter.IPv4); n != 0 {
				t.Fatalf("members and masquerade only: %d hooks, want none", n)
			}
			do(c.other, true)
			if n := hooksOn(t, k, netfilter.IPv4); n != 3 {
				t.Fatalf("with a %s attachment: %d hooks, want 3", c.name, n)
			}
			do(k8s, false) // a neighbour's DEL
			if n := hooksOn(t, k, netfilter.IPv4); n != 3 {
				t.Fatalf("after the other attachment's DEL: %d hooks, want 3", n)
			}
			do(k8s, true)
			do(c.other, false)
			if c.name == "forwarding guard" {
				// The host's element stays until the host's release.
				if n := hooksOn(t, k, netfilter.IPv4); n != 3 {
					t.Fatalf("fwd_guard left: %d hooks, want 3", n)
				}
				if err := netfilter.Do(b.DelForwardGuard); err != nil {
					t.Fatal(err)
				}
			}
			if n := hooksOn(t, k, netfilter.IPv4); n != 0 {
				t.Fatalf("after the %s attachment's DEL: %d hooks, want none", c.name, n)
			}
		})
	}
}

// TestUnhookYieldsToALaterADD: a removal that found every filter set
// empty, then lost the race to an ADD that needs the hooks, must leave
// them: its batch names guard's jump by the handle it read, which the
// ADD renewed. The control is the same removal without the ADD between.
func TestUnhookYieldsToALaterADD(t *testing.T) {
	for _, race := range []bool{true, false} {
		k := nftfake.New()
		b := NewWithDial(netfilter.IPv4, k.Dial, nil)
		p := netfilter.ForwardSpec{Owner: owner("p"), IP: net.ParseIP("10.66.0.2"), Bridge: "br0", Protect: true}
		q := p
		q.Owner, q.IP = owner("q"), net.ParseIP("10.66.0.3")
		if err := netfilter.Do(func(tx *netfilter.Txn) { b.AddForward(tx, p) }); err != nil {
			t.Fatal(err)
		}
		// p's element goes behind the backend's back: the sets are empty.
		if !k.DropFirstElement(byte(netfilter.IPv4.NFT()), Table, SetGuardProtect) {
			t.Fatal("no guard_protect element")
		}
		c, done, _ := k.Dial()
		l := newLayout(netfilter.IPv4)
		token, ok := l.hookToken(c)
		if !ok || l.inUse(c) {
			t.Fatalf("hooked %v, in use %v: want hooked and unused", ok, l.inUse(c))
		}
		if race {
			if err := netfilter.Do(func(tx *netfilter.Txn) { b.AddForward(tx, q) }); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.unhookAt(c, token); err != nil {
			t.Fatal(err)
		}
		done(nil)
		want := map[bool]int{true: 3, false: 0}[race]
		if n := hooksOn(t, k, netfilter.IPv4); n != want {
			t.Errorf("ADD between look and unhook %v: %d hooks, want %d", race, n, want)
		}
	}
}
