package hostports

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

func owner(id string) netfilter.Owner {
	return netfilter.Owner{Network: "net", ContainerID: id, IfName: "eth0"}
}

func pm(hostIP string, port int, proto string) netfilter.PortMapping {
	m := netfilter.PortMapping{HostPort: port, ContainerPort: 80, Protocol: proto}
	if hostIP != "" {
		m.HostIP = net.ParseIP(hostIP)
	}
	return m
}

// Every pair of mappings by two attachments, in both orders: which
// overlap, and that a refused claim changes nothing.
func TestClaimOverlaps(t *testing.T) {
	v4, v6 := []netfilter.Family{netfilter.IPv4}, []netfilter.Family{netfilter.IPv6}
	both := []netfilter.Family{netfilter.IPv4, netfilter.IPv6}
	cases := []struct {
		name     string
		a, b     netfilter.PortMapping
		fa, fb   []netfilter.Family // families each attachment has addresses in
		conflict bool
	}{
		{"wildcard and wildcard", pm("", 8080, "tcp"), pm("", 8080, "tcp"), v4, v4, true},
		{"wildcard and specific", pm("", 8080, "tcp"), pm("192.0.2.1", 8080, "tcp"), v4, v4, true},
		{"0.0.0.0 and specific", pm("0.0.0.0", 8080, "tcp"), pm("127.0.0.1", 8080, "tcp"), v4, v4, true},
		{"same specific address", pm("192.0.2.1", 8080, "tcp"), pm("192.0.2.1", 8080, "tcp"), v4, v4, true},
		{"two specific addresses (Kubernetes conformance)", pm("127.0.0.1", 8080, "tcp"), pm("192.0.2.1", 8080, "tcp"), v4, v4, false},
		{"another protocol", pm("", 8080, "tcp"), pm("", 8080, "udp"), v4, v4, false},
		{"another port", pm("", 8080, "tcp"), pm("192.0.2.1", 8081, "tcp"), v4, v4, false},
		{"wildcard IPv4-only and specific IPv6", pm("", 8080, "tcp"), pm("2001:db8::1", 8080, "tcp"), v4, v6, false},
		{"wildcard dual-stack and specific IPv6", pm("", 8080, "tcp"), pm("2001:db8::1", 8080, "tcp"), both, v6, true},
		{"specific IPv4 and specific IPv6", pm("192.0.2.1", 8080, "tcp"), pm("2001:db8::1", 8080, "tcp"), both, both, false},
		{"0.0.0.0 and :: (one family each)", pm("0.0.0.0", 8080, "tcp"), pm("::", 8080, "tcp"), both, both, false},
		{"0.0.0.0 and no hostIP (both families)", pm("0.0.0.0", 8080, "tcp"), pm("", 8080, "tcp"), both, both, true},
		{":: and a specific IPv6 address", pm("::", 8080, "tcp"), pm("2001:db8::1", 8080, "tcp"), both, both, true},
	}
	for _, c := range cases {
		for _, order := range []string{"a first", "b first"} {
			t.Run(c.name+"/"+order, func(t *testing.T) {
				l := New(t.TempDir())
				first, second := owner("a"), owner("b")
				m1, m2, f1, f2 := c.a, c.b, c.fa, c.fb
				if order == "b first" {
					m1, m2, f1, f2 = m2, m1, f2, f1
				}
				if err := l.Claim(first, wanted(first, f1, m1)); err != nil {
					t.Fatalf("first claim: %v", err)
				}
				err := l.Claim(second, wanted(second, f2, m2))
				var conflict *ConflictError
				if got := errors.As(err, &conflict); got != c.conflict || (err != nil && !got) {
					t.Fatalf("second claim: %v, want conflict %v", err, c.conflict)
				}
				if c.conflict {
					// Refused: nothing of the second is recorded, and once the
					// first is released the second fits.
					if err := l.Release(second); err != nil {
						t.Fatal(err)
					}
					if err := l.Release(first); err != nil {
						t.Fatal(err)
					}
					if err := l.Claim(second, wanted(second, f2, m2)); err != nil {
						t.Fatalf("claim after release: %v", err)
					}
				}
			})
		}
	}
}

func wanted(o netfilter.Owner, fs []netfilter.Family, m netfilter.PortMapping) map[Key][]Claim {
	out := map[Key][]Claim{}
	for _, f := range fs {
		for k, v := range Wanted(o, f, []netfilter.PortMapping{m}) {
			out[k] = v
		}
	}
	return out
}

// A re-ADD replaces the attachment's claims: ports it no longer asks for
// are free for others.
func TestClaimReplaces(t *testing.T) {
	l := New(t.TempDir())
	a, b := owner("a"), owner("b")
	if err := l.Claim(a, wanted(a, []netfilter.Family{netfilter.IPv4}, pm("", 8080, "tcp"))); err != nil {
		t.Fatal(err)
	}
	if err := l.Claim(a, wanted(a, []netfilter.Family{netfilter.IPv4}, pm("", 9090, "tcp"))); err != nil {
		t.Fatalf("re-ADD with another port: %v", err)
	}
	if err := l.Claim(b, wanted(b, []netfilter.Family{netfilter.IPv4}, pm("", 8080, "tcp"))); err != nil {
		t.Fatalf("8080 after a gave it up: %v", err)
	}
	err := l.Claim(b, wanted(b, []netfilter.Family{netfilter.IPv4}, pm("127.0.0.1", 9090, "tcp")))
	if err == nil || err.Error() != "host port 9090/tcp on 127.0.0.1 overlaps 9090/tcp on 0.0.0.0, already published by container a (network net): a mapping on every address overlaps every other mapping of its port and protocol; pick another hostPort, or give both mappings distinct specific hostIPs" {
		t.Errorf("conflict message: %v", err)
	}
}

// GC reports an owner file that does not load, leaves it, and collects
// the rest.
func TestGCReportsUnreadableOwners(t *testing.T) {
	dir := t.TempDir()
	l := New(dir)
	for _, id := range []string{"gone", "live"} {
		if err := l.Claim(owner(id), Wanted(owner(id), netfilter.IPv4, []netfilter.PortMapping{pm("", map[string]int{"gone": 8004, "live": 8005}[id], "tcp")})); err != nil {
			t.Fatal(err)
		}
	}
	broken := filepath.Join(dir, "hostports", "owners", owner("broken").Tag()+".json")
	if err := os.WriteFile(broken, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := l.GC("net", map[string]bool{owner("live").Tag(): true})
	if err == nil || !strings.Contains(err.Error(), owner("broken").Tag()) {
		t.Errorf("GC: %v, want the unreadable owner file named", err)
	}
	if _, err := os.Stat(broken); err != nil {
		t.Errorf("the unreadable owner file was removed: %v", err)
	}
	// gone's port is free again; live's is not.
	if err := l.Claim(owner("new"), Wanted(owner("new"), netfilter.IPv4, []netfilter.PortMapping{pm("", 8004, "tcp")})); err != nil {
		t.Errorf("gone's port after GC: %v", err)
	}
	if err := l.Claim(owner("new2"), Wanted(owner("new2"), netfilter.IPv4, []netfilter.PortMapping{pm("", 8005, "tcp")})); err == nil {
		t.Error("live's port was taken after GC")
	}
}
