package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Probes an attacker would send, each with a control that shows the path
// exists without the protection.

// portShared is published by two containers, each on its own host address.
const portShared = 8720

// TestAllowlistSurvivesNeighbourDel: two containers publish the same port
// on two host addresses with the same source allowlist; the DEL of one
// leaves the other's list whole, so a source outside it still gets
// nothing, a source in it still gets in, and CHECK of the survivor
// passes. Both backends, IPv4 and IPv6, TCP and UDP.
func TestAllowlistSurvivesNeighbourDel(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, backend)
			w.dualStack()
			nbr := w.newNeighbour()
			nbr.MustRun("ip", "route", "add", "192.0.2.0/24", "via", hostAddrNbr)
			// IPv4: the neighbour in, the client out; IPv6: the client in,
			// the host's own connections out.
			list := []string{nbrAddr, clientAddr6 + "/128"}
			conf := w.network(network{file: "dual-stack/10-docker0.conflist"})
			c1, c2 := w.newContainer("c1"), w.newContainer("c2")
			ms1 := withSources(append(both(portShared, hostAddr), both(portShared, hostAddr6)...), list...)
			ms2 := withSources(append(both(portShared, hostAddr2), both(portShared, hostAddr6b)...), list...)
			d := w.libcniFor(conf)
			w.addTo(conf, c1, ms1)
			w.addTo(conf, c2, ms2)
			probe := func(when string, addrs []string, addrs6 []string) {
				for _, proto := range []string{"tcp", "udp"} {
					for _, a := range addrs {
						w.mustReach(nbr, proto, a, portShared)
						w.mustNotReach(w.client, proto, a, portShared)
					}
					for _, a := range addrs6 {
						w.mustReach(w.client, proto, a, portShared)
						w.mustNotReach(w.host, proto, a, portShared)
					}
				}
				t.Logf("%s: the list holds on %v %v", when, addrs, addrs6)
			}
			probe("both published", []string{hostAddr, hostAddr2}, []string{hostAddr6, hostAddr6b})
			if err := d.del(c1, ms1); err != nil {
				t.Fatalf("DEL c1: %v", err)
			}
			probe("after the neighbour's DEL", []string{hostAddr2}, []string{hostAddr6b})
			if err := d.check(c2, ms2); err != nil {
				t.Fatalf("CHECK of the survivor after its neighbour's DEL: %v", err)
			}
		})
	}
}

// TestProtectionsAnyConntrackState: direct routing to a protected
// container is dropped whatever conntrack makes of the packet. A bare FIN
// and a flagless segment to a closed port (what a FIN or null scan sends,
// and conntrack calls invalid) get no RST back, and with a NOTRACK rule
// for the container's port, a whole connection to it fails, IPv4 and
// IPv6, both backends. The control deletes the direct-routing drop: the
// same probes then get the container's RST and its answer.
func TestProtectionsAnyConntrackState(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, backend)
			w.dualStack()
			w.client.MustRun("ip", "route", "add", "172.16.0.0/12", "via", hostAddr)
			w.client.MustRun("ip", "-6", "route", "add", "fd00::/8", "via", hostAddr6)
			conf := w.network(network{file: "dual-stack/10-docker0.conflist"})
			c1 := w.newContainer("c1")
			ip4 := w.addTo(conf, c1, both(portAll, ""))
			ip6 := containerIP6(t, c1)
			w.waitServing(c1, ip6)
			w.mustReach(w.client, "tcp", hostAddr, portAll) // published: reachable
			// NOTRACK for the container's port, both ways, as a host
			// tuning a busy port might.
			addNoTrack(w)

			const closed = 5999 // nothing listens there in the container
			for _, ip := range []string{ip4, ip6} {
				for _, flags := range []string{"FIN", "none", "FIN,PSH,URG"} {
					if got := w.segment(w.client, ip, closed, flags); got != "no reply" {
						t.Errorf("%s segment to closed port %s:%d of a protected container: %s, want no reply", flags, ip, closed, got)
					}
				}
				w.mustNotReach(w.client, "tcp", ip, helloPort) // untracked both ways
			}

			// The control: without the drop, the same probes get through.
			w.dropDirectRoutingDrops()
			for _, ip := range []string{ip4, ip6} {
				for _, flags := range []string{"FIN", "none", "FIN,PSH,URG"} {
					if got := w.segment(w.client, ip, closed, flags); !strings.Contains(got, "RST") {
						t.Errorf("control: %s segment to closed port %s:%d without the drop: %s, want the container's RST", flags, ip, closed, got)
					}
				}
				w.mustReach(w.client, "tcp", ip, helloPort)
			}
		})
	}
}

// addNoTrack exempts the hello port from conntrack in the host netns, in a
// table of the test's own.
func addNoTrack(w *world) {
	w.host.MustRun("nft", "add", "table", "inet", "zt_notrack")
	w.host.MustRun("nft", "add", "chain", "inet", "zt_notrack", "pre", "{ type filter hook prerouting priority raw; }")
	w.host.MustRun("nft", "add", "rule", "inet", "zt_notrack", "pre", "tcp", "dport", "5000", "notrack")
	w.host.MustRun("nft", "add", "rule", "inet", "zt_notrack", "pre", "tcp", "sport", "5000", "notrack")
}

// segment sends one bare TCP segment from ns and returns what came back.
func (w *world) segment(from interface {
	Run(...string) (string, error)
}, ip string, port int, flags string) string {
	w.t.Helper()
	target := ip + ":" + fmt.Sprint(port)
	if strings.Contains(ip, ":") {
		target = "[" + ip + "]:" + fmt.Sprint(port)
	}
	out, err := from.Run(filepath.Join(w.bin, "hello"), "segment", target, flags)
	if err != nil {
		w.t.Fatalf("hello segment %s %s: %v: %s", target, flags, err, out)
	}
	return strings.TrimSpace(out)
}

// dropDirectRoutingDrops deletes the direct-routing drops of both
// families: the nftables guard chain's, or the iptables DNET-GUARD chains'.
func (w *world) dropDirectRoutingDrops() {
	if w.backend == "iptables" {
		w.host.MustRun(w.iptables, "-t", "mangle", "-F", "DNET-GUARD")
		w.host.MustRun(strings.Replace(w.iptables, "iptables", "ip6tables", 1), "-t", "mangle", "-F", "DNET-GUARD")
		return
	}
	for _, family := range []string{"ip", "ip6"} {
		out := w.host.MustRun("nft", "-a", "list", "chain", family, "dnet", "guard")
		m := regexp.MustCompile(`(?m)@guard_protect .* drop # handle (\d+)$`).FindStringSubmatch(out)
		if m == nil {
			w.t.Fatalf("no direct-routing drop in the %s guard chain:\n%s", family, out)
		}
		w.host.MustRun("nft", "delete", "rule", family, "dnet", "guard", "handle", m[1])
	}
}
