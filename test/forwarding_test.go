package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// Two machines on either side of the host, neither of them a container:
// the host routes between them only if it forwards. 198.18.0.0/15 is the
// benchmarking range, routed nowhere.
const (
	hostAddrLeft  = "198.18.1.1"
	leftAddr      = "198.18.1.2"
	hostAddrRight = "198.18.2.1"
	rightAddr     = "198.18.2.2"
	rightPort     = 7600
	// The same two links in IPv6 documentation space.
	hostAddrLeft6  = "2001:db8:a::1"
	leftAddr6      = "2001:db8:a::2"
	hostAddrRight6 = "2001:db8:b::1"
	rightAddr6     = "2001:db8:b::2"
)

// newRouted links a left and a right netns to the host, each routing the
// other's subnet via the host, and serves hello on the right one.
func (w *world) newRouted() (left *testenv.NS) {
	left = testenv.NewNS(w.t, w.prefix+"-left")
	right := testenv.NewNS(w.t, w.prefix+"-right")
	testenv.Link(w.t, w.host, "eth2", hostAddrLeft+"/24", left, "eth0", leftAddr+"/24")
	testenv.Link(w.t, w.host, "eth3", hostAddrRight+"/24", right, "eth0", rightAddr+"/24")
	left.MustRun("ip", "route", "add", "198.18.2.0/24", "via", hostAddrLeft)
	right.MustRun("ip", "route", "add", "198.18.1.0/24", "via", hostAddrRight)
	if w.ipv6 {
		w.host.MustRun("ip", "addr", "add", hostAddrLeft6+"/64", "dev", "eth2", "nodad")
		w.host.MustRun("ip", "addr", "add", hostAddrRight6+"/64", "dev", "eth3", "nodad")
		left.MustRun("ip", "addr", "add", leftAddr6+"/64", "dev", "eth0", "nodad")
		right.MustRun("ip", "addr", "add", rightAddr6+"/64", "dev", "eth0", "nodad")
		left.MustRun("ip", "route", "add", "2001:db8:b::/64", "via", hostAddrLeft6)
		right.MustRun("ip", "route", "add", "2001:db8:a::/64", "via", hostAddrRight6)
	}
	right.Start(filepath.Join(w.bin, "hello"), "serve", "-port", "7600")
	testenv.Eventually(w.t, 10*time.Second, "hello on the right", func() error {
		_, err := w.request(right, "tcp", rightAddr, rightPort)
		return err
	})
	return left
}

func (w *world) forwarding() string {
	return strings.TrimSpace(w.host.MustRun("cat", "/proc/sys/net/ipv4/ip_forward"))
}

func (w *world) forwarding6() string {
	return strings.TrimSpace(w.host.MustRun("cat", "/proc/sys/net/ipv6/conf/all/forwarding"))
}

// guardPresent reports whether the forwarding guard is installed.
func (w *world) guardPresent() bool {
	if w.backend == "iptables" {
		return strings.Contains(w.host.MustRun(w.iptables+"-save", "-t", "filter"), "dnet:fwd-guard")
	}
	out, _ := w.host.Run("nft", "list", "set", "ip", "dnet", "fwd_guard")
	return strings.Contains(out, "elements")
}

// guardPresent6 is guardPresent for IPv6.
func (w *world) guardPresent6() bool {
	if w.backend == "iptables" {
		return strings.Contains(w.host.MustRun("ip6tables-save", "-t", "filter"), "dnet:fwd-guard")
	}
	out, _ := w.host.Run("nft", "list", "set", "ip6", "dnet", "fwd_guard")
	return strings.Contains(out, "elements")
}

// TestForwardingGuard: when the bridge turns the host's forwarding on,
// the host forwards only what a container network takes part in, as
// Docker does, until the last DEL sets everything back; with
// ipForwardNoDrop, or when forwarding was on before, everything is
// forwarded. Each drop has its control: the same path, forwarded.
func TestForwardingGuard(t *testing.T) {
	for _, backend := range backends {
		for _, tc := range []struct {
			name      string
			onBefore  bool
			keys      map[string]any
			forwarded bool // left to right after ADD
			dual      bool // IPv6 too: both families' forwarding and guards
		}{
			{name: "enabled-by-bridge"},
			{name: "no-drop", keys: map[string]any{"ipForwardNoDrop": true}, forwarded: true},
			{name: "on-before", onBefore: true, forwarded: true},
			{name: "dual-stack", dual: true},
		} {
			t.Run(backend+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				w := newWorld(t, backend)
				if tc.dual {
					w.dualStack()
				}
				left := w.newRouted()
				if tc.onBefore {
					w.host.MustRun("sysctl", "-qw", "net.ipv4.ip_forward=1")
				}
				n := network{bridgeKeys: tc.keys}
				if tc.dual {
					n.file = "dual-stack/10-docker0.conflist"
				}
				conf := w.network(n)
				c1 := w.newContainer("c1")
				w.addTo(conf, c1, c1Mappings())
				if got := w.forwarding(); got != "1" {
					t.Fatalf("ip_forward is %s after ADD, want 1", got)
				}
				// Container traffic is forwarded either way.
				w.mustReach(w.client, "tcp", hostAddr, portAll)
				w.mustReach(left, "tcp", hostAddrLeft, portAll)
				w.mustReach(c1.ns, "tcp", rightAddr, rightPort)
				if tc.forwarded {
					w.mustReach(left, "tcp", rightAddr, rightPort)
					w.mustReach(left, "udp", rightAddr, rightPort)
				} else {
					w.mustNotReach(left, "tcp", rightAddr, rightPort)
					w.mustNotReach(left, "udp", rightAddr, rightPort)
					if !w.guardPresent() {
						t.Fatal("the forwarding guard is not installed")
					}
				}
				if tc.dual {
					if got := w.forwarding6(); got != "1" {
						t.Fatalf("IPv6 forwarding is %s after ADD, want 1", got)
					}
					w.mustNotReach(left, "tcp", rightAddr6, rightPort)
					w.mustNotReach(left, "udp", rightAddr6, rightPort)
					if !w.guardPresent6() {
						t.Fatal("the IPv6 forwarding guard is not installed")
					}
				}
				if err := w.libcniFor(conf).del(c1, c1Mappings()); err != nil {
					t.Fatalf("DEL: %v", err)
				}
				want := "0"
				if tc.onBefore {
					want = "1"
				}
				if got := w.forwarding(); got != want {
					t.Fatalf("ip_forward is %s after the last DEL, want %s (what it was)", got, want)
				}
				if w.guardPresent() {
					t.Fatal("the forwarding guard is still installed after the last DEL")
				}
				// The control: the path exists once the host forwards.
				w.host.MustRun("sysctl", "-qw", "net.ipv4.ip_forward=1")
				w.mustReach(left, "tcp", rightAddr, rightPort)
				w.mustReach(left, "udp", rightAddr, rightPort)
				if tc.dual {
					if got := w.forwarding6(); got != "0" {
						t.Fatalf("IPv6 forwarding is %s after the last DEL, want 0 (what it was)", got)
					}
					if w.guardPresent6() {
						t.Fatal("the IPv6 forwarding guard is still installed after the last DEL")
					}
					w.host.MustRun("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
					w.mustReach(left, "tcp", rightAddr6, rightPort)
					w.mustReach(left, "udp", rightAddr6, rightPort)
				}
			})
		}
	}
}
