package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
)

// testPublishedPortsIPv6 is the port path over IPv6, in a dual-stack
// world: external client, the host's own address, a bound address,
// hairpin from a sibling and from the container itself, outbound
// (masqueraded), and container to container by address. There is no
// ::1 path: IPv6 never routes a loopback source off the host, and the
// kernel drops ::1 arriving from outside before netfilter sees it.
func testPublishedPortsIPv6(t *testing.T, w *world, d driver) {
	c1, c2 := w.newContainer("v6a"), w.newContainer("v6b")
	w.client.Start(filepath.Join(w.bin, "hello"), "serve", "-port", fmt.Sprint(clientServer))
	ms := append(both(portAll, ""), both(portBound, hostAddr6b)...)
	if _, err := d.add(c1, ms); err != nil {
		t.Fatalf("ADD v6a: %v", err)
	}
	// c2 publishes one port on 0.0.0.0 and one on ::, each one family only.
	c2ms := append(both(portV4Only, "0.0.0.0"), both(portV6Only, "::")...)
	// And one only the client may reach, by its IPv6 address.
	c2ms = append(c2ms, withSources(both(portAllow6, ""), clientAddr6)...)
	if _, err := d.add(c2, c2ms); err != nil {
		t.Fatalf("ADD v6b: %v", err)
	}
	ip1, ip2 := containerIP6(t, c1), containerIP6(t, c2)
	w.waitServing(c1, ip1)
	w.waitServing(c2, ip2)
	for _, proto := range []string{"tcp", "udp"} {
		t.Run("ipv6/"+proto, func(t *testing.T) {
			w := *w
			w.t = t
			if peer := w.mustReach(w.client, proto, hostAddr6, portAll); peer != clientAddr6 {
				t.Errorf("external: container saw %s, want the client's %s", peer, clientAddr6)
			}
			w.mustReach(w.host, proto, hostAddr6, portAll)
			w.mustReach(w.client, proto, hostAddr6b, portBound)
			w.mustNotReach(w.client, proto, hostAddr6, portBound)
			w.mustReach(c2.ns, proto, hostAddr6, portAll)
			w.mustReach(c1.ns, proto, hostAddr6, portAll)
			// Masquerade picks one of the host's addresses by IPv6 source selection.
			if peer := w.mustReach(c1.ns, proto, clientAddr6, clientServer); peer != hostAddr6 && peer != hostAddr6b {
				t.Errorf("outbound: client saw %s, want one of the host's (masquerade)", peer)
			}
			if peer := w.mustReach(c2.ns, proto, ip1, helloPort); peer != ip2 {
				t.Errorf("container to container: saw %s, want %s", peer, ip2)
			}
			// Wildcard families as Docker and the reference read them.
			w.mustReach(w.client, proto, hostAddr, portV4Only)
			w.mustNotReach(w.client, proto, hostAddr6, portV4Only)
			w.mustReach(w.client, proto, hostAddr6, portV6Only)
			w.mustNotReach(w.client, proto, hostAddr, portV6Only)
			// A source allowlist over IPv6: the client in; a container
			// (hairpin) and the host out; over IPv4, the list has no
			// entry of the family, so no source gets in.
			w.mustReach(w.client, proto, hostAddr6, portAllow6)
			w.mustNotReach(c1.ns, proto, hostAddr6, portAllow6)
			w.mustNotReach(w.host, proto, hostAddr6, portAllow6)
			w.mustNotReach(w.client, proto, hostAddr, portAllow6)
		})
	}
	for c, ms := range map[*container][]mapping{c1: ms, c2: c2ms} {
		if err := d.del(c, ms); err != nil {
			t.Fatalf("DEL: %v", err)
		}
	}
	w.assertGone(c1, ip1, []int{portAll, portBound})
}

// Ports published on one family's wildcard address only.
const (
	portV4Only = 8610
	portV6Only = 8611
	portAllow6 = 8612 // published with an IPv6 source allowlist
)

// TestPublishedPortsIPv6 runs the IPv6 port path with each backend.
func TestPublishedPortsIPv6(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, backend)
			w.dualStack()
			testPublishedPortsIPv6(t, w, w.libcni(""))
		})
	}
}
