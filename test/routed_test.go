package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// TestGatewayModeRouted probes Docker 28's gatewayMode routed: a
// published container port (and ICMP) is reached at the container's own
// address, from a neighbour and from another network's container; an
// unpublished port is not, nor is the host port (no DNAT); the container's
// outbound traffic keeps its address (no masquerade); CHECK passes, and
// DEL leaves nothing naming the address. The control for the unpublished
// port is the same container's published one, on the same path.
func TestGatewayModeRouted(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, backend)
			nbr := w.newNeighbour()
			nbr.Start(filepath.Join(w.bin, "hello"), "serve", "-bind", nbrAddr, "-port", "7700")
			routed := w.network(network{name: "rtd", bridge: "dnetr", subnet: "172.24.0.0/16",
				bridgeKeys: map[string]any{"gatewayMode": "routed"}})
			r := w.newContainer("r")
			r.ns.Start(filepath.Join(w.bin, "hello"), "serve", "-port", "5001") // unpublished
			ms := both(8080, "")
			ipR := w.addTo(routed, r, ms)
			testenv.Eventually(t, 10*time.Second, "unpublished server in r", func() error {
				_, err := w.request(r.ns, "tcp", ipR, 5001)
				return err
			})
			other := w.newContainer("o")
			w.addTo(w.conflist(""), other, nil)

			for _, proto := range []string{"tcp", "udp"} {
				w.mustReach(nbr, proto, ipR, helloPort)
				w.mustReach(other.ns, proto, ipR, helloPort)
				w.mustNotReach(nbr, proto, ipR, 5001)
				w.mustNotReach(other.ns, proto, ipR, 5001)
				w.mustNotReach(nbr, proto, hostAddrNbr, 8080) // the host port is not used
			}
			if out, err := nbr.Run(filepath.Join(w.bin, "hello"), "ping", ipR); err != nil {
				t.Errorf("ICMP from the neighbour to %s: %v: %s", ipR, err, out)
			}
			if peer := w.mustReach(r.ns, "tcp", nbrAddr, 7700); peer != ipR {
				t.Errorf("the neighbour saw %s, not the container's address %s: masqueraded", peer, ipR)
			}
			if err := w.libcniFor(routed).check(r, ms); err != nil {
				t.Errorf("CHECK: %v", err)
			}
			if err := w.libcniFor(routed).del(r, ms); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			rules := w.host.MustRun("nft", "list", "ruleset") + w.host.MustRun(w.iptables+"-save")
			for _, line := range strings.Split(rules, "\n") {
				if strings.Contains(line, ipR+" ") || strings.Contains(line, ipR+"/32") {
					t.Errorf("after DEL the rules still name %s: %s", ipR, line)
				}
			}
		})
	}
}
