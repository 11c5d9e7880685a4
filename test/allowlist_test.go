package e2e

import (
	"testing"
)

// Ports published with source allowlists.
const (
	portAllowNet   = 8700 // the network's allowedSources: the client and the containers' subnet
	portAllowNbr   = 8701 // sourceRanges: the neighbour only
	portAllowHost  = 8702 // sourceRanges: the host's own address only
	portAllowNone  = 8703 // no allowlist, on a network without one: the control
	allowedSubnet  = "172.17.0.0/16"
	controlNetwork = "open"
)

// TestSourceAllowlists: a published port with an allowlist answers the
// sources it lists and no other, over TCP and UDP, from outside, from a
// container through the host's address (hairpin) and from the host
// itself, with each backend; a refused source gets nothing back. The
// control is a port without a list, which every one of them reaches.
func TestSourceAllowlists(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, backend)
			nbr := w.newNeighbour()
			limited := w.network(network{portmapKeys: map[string]any{
				"allowedSources": []string{clientAddr, allowedSubnet}}})
			ms := append(both(portAllowNet, ""), withSources(both(portAllowNbr, ""), nbrAddr)...)
			ms = append(ms, withSources(both(portAllowHost, ""), hostAddr+"/32")...)
			c1 := w.newContainer("c1")
			w.addTo(limited, c1, ms)
			c2 := w.newContainer("c2")
			w.addTo(limited, c2, nil)
			open := w.network(network{name: controlNetwork, bridge: "dneto", subnet: "172.21.0.0/16"})
			cO := w.newContainer("co")
			w.addTo(open, cO, both(portAllowNone, ""))

			for _, proto := range []string{"tcp", "udp"} {
				// The network's list: the client and the containers' subnet.
				w.mustReach(w.client, proto, hostAddr, portAllowNet)
				w.mustReach(c2.ns, proto, hostAddr, portAllowNet)
				w.mustNotReach(nbr, proto, hostAddrNbr, portAllowNet)
				w.mustNotReach(w.host, proto, hostAddr, portAllowNet)
				// A mapping's own list takes the network's place.
				w.mustReach(nbr, proto, hostAddrNbr, portAllowNbr)
				w.mustNotReach(w.client, proto, hostAddr, portAllowNbr)
				w.mustNotReach(c2.ns, proto, hostAddr, portAllowNbr)
				// The host's own connections follow the list too.
				w.mustReach(w.host, proto, hostAddr, portAllowHost)
				w.mustNotReach(w.client, proto, hostAddr, portAllowHost)
				// The control: no list, every source.
				w.mustReach(w.client, proto, hostAddr, portAllowNone)
				w.mustReach(nbr, proto, hostAddrNbr, portAllowNone)
				w.mustReach(c2.ns, proto, hostAddr, portAllowNone)
				w.mustReach(w.host, proto, hostAddr, portAllowNone)
			}
		})
	}
}

// withSources gives each mapping the source allowlist sources.
func withSources(ms []mapping, sources ...string) []mapping {
	for i := range ms {
		ms[i].SourceRanges = sources
	}
	return ms
}
