package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// The mode matrix: who reaches a container of another network, by
// gateway mode, with isolateNetworks at its default (true). The Security
// model (plugins/pkg/netfilter/README.md) prints the same table.
//
// Each target container listens on its container port (5000) and
// publishes it; port 5999 is closed, so a reply of any kind (RST) shows
// the path is open. Probes are single SYNs (hello segment), and a bare
// FIN, which conntrack calls invalid, to the closed port.
type modeProbe int

const (
	closedByAddr    modeProbe = iota // an unpublished port, by the container's address
	publishedByAddr                  // the published container port, by the container's address
	publishedByHost                  // the published host port, by the host's address (DNAT)
	finByAddr                        // a bare FIN to the unpublished port (conntrack: invalid)
)

func (p modeProbe) String() string {
	return [...]string{"unpublished port by address", "published port by address", "host port by host address", "bare FIN by address"}[p]
}

// modeReach is the matrix: from (a neighbour routing via the host, or a
// container of a network in that mode) to a container of another network
// in mode to, by probe.
func modeReach(from, to string, p modeProbe) bool {
	if p == finByAddr {
		p = closedByAddr
	}
	switch to {
	case "nat":
		return p == publishedByHost
	case "nat-unprotected":
		return from == "neighbour" || p == publishedByHost
	case "routed":
		return p == publishedByAddr
	}
	return false // isolated: nothing from outside its bridge
}

// Host ports of the targets (routed and isolated use none).
var modeHostPort = map[string]int{"nat": 8741, "nat-unprotected": 8742}

// TestModeMatrix probes every cell of the mode matrix, both backends,
// IPv4 and IPv6: sources a neighbour and containers of nat,
// nat-unprotected and routed networks (an isolated network's containers
// have no route out), targets a container of each of the four modes on
// networks of their own. The open cells are the controls for the closed
// ones: the same probe, another mode.
func TestModeMatrix(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, backend)
			w.dualStack()
			nbr := w.newNearNeighbour()
			// A target network of each mode and, for the sources, a second
			// network of each mode that has a way out: every cell, the
			// diagonal included, is between two networks.
			type net struct{ name, bridge, subnet, subnet6 string }
			targets := map[string]net{
				"nat":             {"netn", "dnetn", "172.25.0.0/16", "fd00:25::/64"},
				"nat-unprotected": {"netu", "dnetu", "172.26.0.0/16", "fd00:26::/64"},
				"routed":          {"netr", "dnetr", "172.27.0.0/16", "fd00:27::/64"},
				"isolated":        {"neti", "dneti", "172.28.0.0/16", "fd00:28::/64"},
			}
			sources := map[string]net{
				"nat":             {"netn2", "dnetn2", "172.29.0.0/16", "fd00:29::/64"},
				"nat-unprotected": {"netu2", "dnetu2", "172.30.0.0/16", "fd00:30::/64"},
				"routed":          {"netr2", "dnetr2", "172.31.0.0/16", "fd00:31::/64"},
			}
			modes := []string{"nat", "nat-unprotected", "routed", "isolated"}
			addrs, addrs6 := map[string]string{}, map[string]string{}
			ns := map[string]*testenv.NS{"neighbour": nbr}
			attach := func(mode string, n net, publish bool) *container {
				conf := w.network(network{name: n.name, bridge: n.bridge, subnet: n.subnet, subnet6: n.subnet6,
					bridgeKeys: map[string]any{"gatewayMode": mode}})
				c := w.newContainer(n.name)
				var ms []mapping
				switch {
				case !publish:
				case mode == "routed":
					ms = []mapping{{HostPort: helloPort, ContainerPort: helloPort, Protocol: "tcp"}}
				case mode == "nat", mode == "nat-unprotected":
					ms = []mapping{{HostPort: modeHostPort[mode], ContainerPort: helloPort, Protocol: "tcp"}}
				}
				if _, err := w.libcniFor(conf).add(c, ms); err != nil {
					t.Fatalf("ADD to the %s network %s: %v", mode, n.name, err)
				}
				return c
			}
			for _, mode := range modes {
				c := attach(mode, targets[mode], true)
				addrs[mode], addrs6[mode] = containerIP(t, c), containerIP6(t, c)
				if n, ok := sources[mode]; ok {
					ns[mode] = attach(mode, n, false).ns
				}
			}
			// IPv6 addresses still in duplicate address detection (the
			// bridges' gateways) would drop the first probes: wait for them.
			for _, n := range ns {
				waitNoTentative(t, n)
			}
			waitNoTentative(t, w.host)
			type cell struct {
				from, to string
				p        modeProbe
				target   string
				flags    string
				want     bool
			}
			var cells []cell
			for _, from := range []string{"neighbour", "nat", "nat-unprotected", "routed"} {
				for _, to := range modes {
					for _, v6 := range []bool{false, true} {
						addr, host := addrs[to], hostAddr
						switch {
						case v6 && from == "neighbour":
							addr, host = "["+addrs6[to]+"]", "["+hostAddrNbr6+"]"
						case v6:
							addr, host = "["+addrs6[to]+"]", "["+hostAddr6+"]"
						case from == "neighbour":
							host = hostAddrNbr
						}
						cells = append(cells,
							cell{from, to, closedByAddr, fmt.Sprintf("%s:%d", addr, 5999), "SYN", modeReach(from, to, closedByAddr)},
							cell{from, to, finByAddr, fmt.Sprintf("%s:%d", addr, 5999), "FIN", modeReach(from, to, finByAddr)},
							cell{from, to, publishedByAddr, fmt.Sprintf("%s:%d", addr, helloPort), "SYN", modeReach(from, to, publishedByAddr)})
						if hp := modeHostPort[to]; hp != 0 {
							cells = append(cells, cell{from, to, publishedByHost, fmt.Sprintf("%s:%d", host, hp), "SYN", modeReach(from, to, publishedByHost)})
						}
					}
				}
			}
			// One SYN per cell, all at once: a closed cell costs its wait.
			got := make([]string, len(cells))
			var wg sync.WaitGroup
			for i, c := range cells {
				wg.Add(1)
				go func() {
					defer wg.Done()
					out, err := w.segment(ns[c.from], c.target, c.flags)
					got[i] = out
					if err != nil {
						got[i] = "error: " + err.Error()
					}
				}()
			}
			wg.Wait()
			for i, c := range cells {
				reached := strings.HasPrefix(got[i], "reply:")
				if c.want && !reached {
					// An open cell may lose its first SYNs to a neighbour
					// resolution under load: once more, alone. A closed
					// cell is never asked twice.
					out, _ := w.segment(ns[c.from], c.target, c.flags)
					got[i] = out + " (the second try; the first: " + got[i] + ")"
					reached = strings.HasPrefix(got[i], "reply:")
				}
				if reached != c.want || strings.HasPrefix(got[i], "error") {
					t.Errorf("from %s to %s, %s (%s): %s, want reached=%v", c.from, c.to, c.p, c.target, got[i], c.want)
				}
			}
			t.Logf("%d cells probed", len(cells))
		})
	}
}

// waitNoTentative waits until no IPv6 address in n is tentative.
func waitNoTentative(t *testing.T, n *testenv.NS) {
	testenv.Eventually(t, 10*time.Second, "IPv6 addresses out of DAD in "+n.Name, func() error {
		if out := n.MustRun("ip", "-6", "addr", "show", "tentative"); strings.TrimSpace(out) != "" {
			return fmt.Errorf("still tentative: %s", out)
		}
		return nil
	})
}
