package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// The neighbour: another machine on a second host link, which routes the
// container subnets, and 127.0.0.1, via this host.
const (
	hostAddrNbr = "198.51.100.1" // TEST-NET-2, routed nowhere
	nbrAddr     = "198.51.100.2"
	// The same link's IPv6, where a test gives it one (documentation space).
	hostAddrNbr6 = "2001:db8:2::1"
	nbrAddr6     = "2001:db8:2::2"
)

// newNeighbour links a neighbour netns to the host. Its loopback has no
// address, so it sends 127.0.0.1 over the link and accepts replies from
// it (route_localnet lets it), as moby#45610's attacker does.
func (w *world) newNeighbour() *testenv.NS {
	nbr := testenv.NewNS(w.t, w.prefix+"-nbr")
	testenv.Link(w.t, w.host, "eth1", hostAddrNbr+"/24", nbr, "eth0", nbrAddr+"/24")
	for _, cmd := range [][]string{
		{"ip", "route", "add", "172.16.0.0/12", "via", hostAddrNbr},
		{"ip", "addr", "flush", "dev", "lo"},
		{"ip", "link", "set", "lo", "down"},
		{"sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1"},
		{"ip", "route", "add", "127.0.0.1/32", "via", hostAddrNbr, "dev", "eth0"},
	} {
		nbr.MustRun(cmd...)
	}
	return nbr
}

// newNearNeighbour is a neighbour that also routes the host's addresses
// on the client's link via the host, and, in a dual-stack world, has
// IPv6 on its link and routes the containers' and the host's IPv6 too:
// a machine one hop from both the host's addresses and its containers.
func (w *world) newNearNeighbour() *testenv.NS {
	nbr := w.newNeighbour()
	nbr.MustRun("ip", "route", "add", "192.0.2.0/24", "via", hostAddrNbr)
	if w.ipv6 {
		w.host.MustRun("ip", "addr", "add", hostAddrNbr6+"/64", "dev", "eth1", "nodad")
		nbr.MustRun("ip", "addr", "add", nbrAddr6+"/64", "dev", "eth0", "nodad")
		nbr.MustRun("ip", "-6", "route", "add", "fd00::/8", "via", hostAddrNbr6)
		nbr.MustRun("ip", "-6", "route", "add", "2001:db8:1::/64", "via", hostAddrNbr6)
	}
	return nbr
}

// addTo attaches c to the network conflist describes and waits for its server.
func (w *world) addTo(conflist []byte, c *container, ms []mapping) string {
	w.t.Helper()
	if _, err := w.libcniFor(conflist).add(c, ms); err != nil {
		w.t.Fatalf("ADD %s: %v", c.ns.Name, err)
	}
	ip := containerIP(w.t, c)
	w.waitServing(c, ip)
	return ip
}

// TestProtections probes what Docker 28 blocks by default, each probe with
// a control showing the path exists where the protection is off:
//   - a neighbour routing to a container's address reaches no unpublished
//     port (gatewayMode nat); the control is a nat-unprotected network;
//   - a container of another isolated network reaches no container
//     address, but does reach published ports through the host address;
//     the control is a network with isolateNetworks off;
//   - a neighbour sending to 127.0.0.1 reaches no 127.0.0.1-bound
//     mapping, and a container no loopback-only host service; the
//     control removes the one rule that stops both.
func TestProtections(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			testProtections(t, newWorld(t, backend))
		})
	}
}

func testProtections(t *testing.T, w *world) {
	nbr := w.newNeighbour()
	unprotected := map[string]any{"gatewayMode": "nat-unprotected"}
	netB := w.network(network{name: "netb", bridge: "dnetb", subnet: "172.18.0.0/16", bridgeKeys: unprotected})
	netI := w.network(network{name: "neti", bridge: "dneti", subnet: "172.20.0.0/16", bridgeKeys: unprotected})
	netU := w.network(network{name: "netu", bridge: "dnetu", subnet: "172.19.0.0/16",
		bridgeKeys: map[string]any{"gatewayMode": "nat-unprotected", "isolateNetworks": false}})

	c1 := w.newContainer("c1")
	ip1 := w.addTo(w.conflist(""), c1, c1Mappings())
	cB, cI, cU := w.newContainer("cb"), w.newContainer("ci"), w.newContainer("cu")
	w.addTo(netB, cB, nil)
	ipI := w.addTo(netI, cI, nil)
	ipU := w.addTo(netU, cU, nil)

	// Direct routing from a neighbour.
	w.mustNotReach(nbr, "tcp", ip1, helloPort)
	w.mustReach(nbr, "tcp", ipU, helloPort)
	w.mustReach(nbr, "tcp", hostAddrNbr, portAll) // published: still reachable

	// Another network.
	w.mustNotReach(cB.ns, "tcp", ipI, helloPort)
	w.mustNotReach(cB.ns, "udp", ipI, helloPort)
	w.mustNotReach(cB.ns, "tcp", ip1, helloPort)
	w.mustReach(cU.ns, "tcp", ipI, helloPort)
	w.mustReach(cU.ns, "udp", ipI, helloPort)
	w.mustReach(cB.ns, "tcp", hostAddr, portAll)

	// A container sending to the host's 127.0.0.1 (its bridge has
	// route_localnet, for c1's 127.0.0.1 mapping) reaches no loopback-only
	// host service.
	w.host.Start(filepath.Join(w.bin, "hello"), "serve", "-bind", "127.0.0.1", "-port", "7500")
	testenv.Eventually(w.t, 10*time.Second, "loopback-only host service", func() error {
		_, err := w.request(w.host, "tcp", "127.0.0.1", 7500)
		return err
	})
	c2 := w.newContainer("c2")
	w.addTo(w.conflist(""), c2, nil)
	for _, cmd := range [][]string{
		{"ip", "addr", "flush", "dev", "lo"},
		{"sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1"},
		{"ip", "route", "add", "127.0.0.1/32", "via", gatewayIP, "dev", "eth0"},
	} {
		c2.ns.MustRun(cmd...)
	}

	// 127.0.0.1 from a neighbour and from a container, then the control.
	w.mustNotReach(nbr, "tcp", "127.0.0.1", portLocal)
	w.mustNotReach(c2.ns, "tcp", "127.0.0.1", 7500)
	w.dropLoopbackRule()
	w.mustReach(nbr, "tcp", "127.0.0.1", portLocal)
	w.mustReach(c2.ns, "tcp", "127.0.0.1", 7500)
}

// dropLoopbackRule deletes the one rule that keeps 127.0.0.0/8 from
// outside away from containers.
func (w *world) dropLoopbackRule() {
	if w.backend == "iptables" {
		w.host.MustRun(w.iptables, "-t", "raw", "-D", "PREROUTING", "-d", "127.0.0.0/8", "!", "-i", "lo", "-m", "comment", "--comment", "dnet:base", "-j", "DROP")
		return
	}
	w.dropNFTLoopbackRule()
}

// dropNFTLoopbackRule deletes the nftables backend's loopback drop.
func (w *world) dropNFTLoopbackRule() {
	out := w.host.MustRun("nft", "-a", "list", "chain", "ip", "dnet", "guard_rules")
	m := regexp.MustCompile(`iifname != "lo" ip daddr 127\.0\.0\.0/8 drop # handle (\d+)`).FindStringSubmatch(out)
	if m == nil {
		w.t.Fatalf("no loopback drop in the guard chain:\n%s", out)
	}
	w.host.MustRun("nft", "delete", "rule", "ip", "dnet", "guard_rules", "handle", m[1])
}

// TestProtectionsBeforeForward: the drops that keep the outside out come
// before FORWARD and before any DNAT, so nothing another firewall accepts
// earlier undoes them, with each backend and with the two plugins on
// different backends:
//   - with an ACCEPT for every container subnet first in FORWARD (what
//     flannel and `ufw route allow` add), a neighbour routing to a
//     container still reaches no port of it; the control is a
//     nat-unprotected network, reachable through the same ACCEPT;
//   - trustedHostInterfaces lets the neighbour's link in, and no other;
//   - a neighbour sending to 127.0.0.1 reaches no 127.0.0.1 mapping
//     whichever backend bridge and portmap each use; the control removes
//     the drop.
func TestProtectionsBeforeForward(t *testing.T) {
	for _, c := range []struct{ name, bridge, portmap string }{
		{"nftables", "nftables", "nftables"},
		{"iptables", "iptables", "iptables"},
		{"bridge-nftables/portmap-iptables", "nftables", "iptables"},
		{"bridge-iptables/portmap-nftables", "iptables", "nftables"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, c.bridge)
			nbr := w.newNeighbour()
			w.host.MustRun(w.iptables, "-I", "FORWARD", "1", "-d", "172.16.0.0/12", "-j", "ACCEPT")
			keys := network{bridgeKeys: map[string]any{"ipMasqBackend": c.bridge}, portmapKeys: map[string]any{"backend": c.portmap}}
			c1 := w.newContainer("c1")
			ip1 := w.addTo(w.network(keys), c1, c1Mappings())
			netU := w.network(network{name: "netu", bridge: "dnetu", subnet: "172.19.0.0/16",
				bridgeKeys: map[string]any{"gatewayMode": "nat-unprotected", "ipMasqBackend": c.bridge}, portmapKeys: keys.portmapKeys})
			cU := w.newContainer("cu")
			ipU := w.addTo(netU, cU, nil)
			// trustedHostInterfaces: the neighbour's link may route in.
			netT := w.network(network{name: "nett", bridge: "dnett", subnet: "172.22.0.0/16",
				bridgeKeys: map[string]any{"trustedHostInterfaces": []string{"eth1"}, "ipMasqBackend": c.bridge}, portmapKeys: keys.portmapKeys})
			cT := w.newContainer("ct")
			ipT := w.addTo(netT, cT, nil)
			w.client.MustRun("ip", "route", "add", "172.22.0.0/16", "via", hostAddr)
			for _, proto := range []string{"tcp", "udp"} {
				w.mustNotReach(nbr, proto, ip1, helloPort)
				w.mustReach(nbr, proto, ipU, helloPort)
				w.mustReach(nbr, proto, ipT, helloPort)
				w.mustNotReach(w.client, proto, ipT, helloPort) // eth0 is not trusted: a route, but no way in
				w.mustReach(nbr, proto, hostAddrNbr, portAll)   // published: still reachable
			}
			w.mustNotReach(nbr, "tcp", "127.0.0.1", portLocal)
			// The control: without the drops, the neighbour gets through.
			if c.bridge == "iptables" || c.portmap == "iptables" {
				w.host.MustRun(w.iptables, "-t", "raw", "-D", "PREROUTING", "-d", "127.0.0.0/8", "!", "-i", "lo", "-m", "comment", "--comment", "dnet:base", "-j", "DROP")
			}
			if c.bridge == "nftables" || c.portmap == "nftables" {
				w.dropNFTLoopbackRule()
			}
			w.mustReach(nbr, "tcp", "127.0.0.1", portLocal)
		})
	}
}

// TestICC: with icc off, containers of one bridge reach each other only
// through published ports, whether or not br_netfilter passes bridged
// frames through the IP hooks (the two cases block them differently).
// The control is a network with icc on.
func TestICC(t *testing.T) {
	modes := []string{"0"}
	if _, err := os.Stat("/proc/sys/net/bridge/bridge-nf-call-iptables"); err == nil {
		modes = append(modes, "1")
	} else {
		t.Log("no br_netfilter in this kernel: only the case without it runs")
	}
	for _, backend := range backends {
		for _, brnf := range modes {
			t.Run(backend+"/bridge-nf-call-iptables="+brnf, func(t *testing.T) {
				t.Parallel()
				w := newWorld(t, backend)
				if _, err := os.Stat("/proc/sys/net/bridge"); err == nil {
					w.host.MustRun("sysctl", "-qw", "net.bridge.bridge-nf-call-iptables="+brnf)
				}
				for _, icc := range []bool{false, true} {
					name := fmt.Sprintf("icc%v", icc)
					conf := w.network(network{name: name, bridge: "dnet" + name, subnet: map[bool]string{false: "172.21.0.0/16", true: "172.22.0.0/16"}[icc],
						bridgeKeys: map[string]any{"icc": icc}})
					n1, n2 := w.newContainer(name+"a"), w.newContainer(name+"b")
					w.addTo(conf, n1, nil)
					port := map[bool]int{false: 8091, true: 8092}[icc]
					ip2 := w.addTo(conf, n2, both(port, ""))
					for _, proto := range []string{"tcp", "udp"} {
						if icc {
							w.mustReach(n1.ns, proto, ip2, helloPort)
						} else {
							w.mustNotReach(n1.ns, proto, ip2, helloPort)
						}
						w.mustReach(n1.ns, proto, hostAddr, port)
					}
				}
			})
		}
	}
}

// TestKubernetesConflist: conf/kubernetes turns direct-routing protection
// off, because Kubernetes needs pods reachable by address from other nodes
// (and Service traffic DNATed on another node arrives that way too); its
// host ports still work, and a host listener is still not taken over. A
// pod keeps its own address towards the cluster's pod network
// (nonMasqueradeCIDRs), is masqueraded elsewhere, and DEL leaves no
// exception behind.
func TestKubernetesConflist(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, backend)
			node := w.newNeighbour() // another node: it routes the pod CIDR via this one
			node.MustRun("ip", "route", "add", "10.244.0.0/24", "via", hostAddrNbr)
			conf := w.network(network{file: "kubernetes/10-dockernet.conflist"})
			pod := w.newContainer("pod")
			ip := w.addTo(conf, pod, both(8080, ""))
			if peer := w.mustReach(node, "tcp", ip, helloPort); peer != nbrAddr {
				t.Errorf("pod saw %s, want the other node's own %s", peer, nbrAddr)
			}
			w.mustReach(node, "udp", ip, helloPort)
			w.mustReach(w.client, "tcp", hostAddr, 8080)
			w.mustReach(pod.ns, "tcp", hostAddr, 8080)

			// The other node's own pod network, and a server on it.
			const remotePod = "10.244.9.2"
			node.MustRun("ip", "addr", "add", remotePod+"/24", "dev", "eth0", "nodad")
			w.host.MustRun("ip", "route", "add", "10.244.9.0/24", "via", nbrAddr)
			node.Start(filepath.Join(w.bin, "hello"), "serve", "-port", fmt.Sprint(helloPort))
			testenv.Eventually(t, 10*time.Second, "hello on the other node", func() error {
				_, err := w.request(w.host, "tcp", nbrAddr, helloPort)
				return err
			})
			if peer := w.mustReach(pod.ns, "tcp", remotePod, helloPort); peer != ip {
				t.Errorf("a pod on another node saw %s, want the pod's own %s (10.244.0.0/16 is not masqueraded)", peer, ip)
			}
			if peer := w.mustReach(pod.ns, "tcp", nbrAddr, helloPort); peer != hostAddrNbr {
				t.Errorf("outside the pod network the server saw %s, want the node's %s (masqueraded)", peer, hostAddrNbr)
			}
			if err := w.libcniFor(conf).del(pod, both(8080, "")); err != nil {
				t.Fatal(err)
			}
			rules := w.host.MustRun("nft", "list", "ruleset") + w.host.MustRun(w.iptables+"-save", "-t", "nat")
			for _, left := range []string{ip + " . ", "-s " + ip + "/32"} {
				if strings.Contains(rules, left) {
					t.Errorf("after DEL the rules still hold %q:\n%s", left, rules)
				}
			}
		})
	}
}

// TestGatewayModeFollowsKubernetes: on the default (Docker) network, a
// pod added with the CNI_ARGS a CRI runtime sends gets Kubernetes' model
// (a neighbour routing to it reaches it), a container added without them
// to a network of the same conflist keeps Docker's protection, and CHECK
// fails when the arguments no longer match the mode the attachment got.
// (The iptables backend keeps the protection per bridge, so the plain
// container is on a bridge of its own; see README, Security model.)
func TestGatewayModeFollowsKubernetes(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, backend)
			nbr := w.newNeighbour()
			d := w.libcni(gcVersion)
			ctx := context.Background()
			pod, plain := w.newContainer("pod"), w.newContainer("plain")
			kube := d.rt(pod, nil)
			kube.Args = [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", "web"}, {"K8S_POD_INFRA_CONTAINER_ID", pod.id}}
			if _, err := d.cni.AddNetworkList(ctx, d.list, kube); err != nil {
				t.Fatal(err)
			}
			other := w.libcniFor(w.network(network{cniVersion: gcVersion, name: "plain", bridge: "dnet1", subnet: "172.30.0.0/16"}))
			if _, err := other.add(plain, nil); err != nil {
				t.Fatal(err)
			}
			podIP, plainIP := containerIP(t, pod), containerIP(t, plain)
			w.waitServing(pod, podIP)
			w.waitServing(plain, plainIP)
			w.mustReach(nbr, "tcp", podIP, helloPort)
			w.mustNotReach(nbr, "tcp", plainIP, helloPort)

			if err := d.cni.CheckNetworkList(ctx, d.list, kube); err != nil {
				t.Errorf("CHECK with the same CNI_ARGS: %v", err)
			}
			err := d.check(pod, nil) // the same pod, without Kubernetes' arguments
			if err == nil || !strings.Contains(err.Error(), "gatewayMode nat-unprotected (Kubernetes pod default/web") || !strings.Contains(err.Error(), "now give nat") {
				t.Errorf("CHECK without CNI_ARGS: %v, want a drift naming both modes", err)
			}
			if err := d.cni.DelNetworkList(ctx, d.list, kube); err != nil {
				t.Fatal(err)
			}
			if err := other.del(plain, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestICCIPv6: with icc off on a dual-stack network, where br_netfilter
// passes bridged IPv4 frames through the IP hooks and not IPv6 ones, the
// bridge turns bridge-nf-call-ip6tables on, and two containers reach
// each other over IPv6 only through published ports, as over IPv4. (The
// control, icc on, is TestPublishedPortsIPv6's container to container.)
func TestICCIPv6(t *testing.T) {
	if _, err := os.Stat("/proc/sys/net/bridge/bridge-nf-call-ip6tables"); err != nil {
		t.Skip("no br_netfilter in this kernel")
	}
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, backend)
			w.dualStack()
			w.host.MustRun("sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
			w.host.MustRun("sysctl", "-qw", "net.bridge.bridge-nf-call-ip6tables=0")
			conf := w.network(network{file: "dual-stack/10-docker0.conflist", bridgeKeys: map[string]any{"icc": false}})
			n1, n2 := w.newContainer("a"), w.newContainer("b")
			w.addTo(conf, n1, nil)
			w.addTo(conf, n2, both(8093, ""))
			ip2 := containerIP6(t, n2)
			w.waitServing(n2, ip2)
			if got := strings.TrimSpace(w.host.MustRun("sysctl", "-n", "net.bridge.bridge-nf-call-ip6tables")); got != "1" {
				t.Errorf("bridge-nf-call-ip6tables is %s after ADD, want 1", got)
			}
			for _, proto := range []string{"tcp", "udp"} {
				w.mustNotReach(n1.ns, proto, ip2, helloPort)
				w.mustReach(n1.ns, proto, hostAddr6, 8093)
			}
		})
	}
}

// TestGatewayModeIsolated: on a network with gatewayMode isolated, as
// Docker 28 defines it, the bridge has no address and the containers no
// default route: they reach each other, and nothing else (the client
// outside, the host) reaches them or is reached by them; the control is
// the default network, where the same probes pass.
func TestGatewayModeIsolated(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, backend)
			w.host.Start(filepath.Join(w.bin, "hello"), "serve", "-bind", hostAddr, "-port", "7501")
			iso := w.network(network{name: "iso", bridge: "dneti", subnet: "172.23.0.0/16",
				bridgeKeys: map[string]any{"gatewayMode": "isolated"}})
			a, b := w.newContainer("a"), w.newContainer("b")
			for _, c := range []*container{a, b} {
				if _, err := w.libcniFor(iso).add(c, nil); err != nil {
					t.Fatal(err)
				}
			}
			ipA, ipB := containerIP(t, a), containerIP(t, b)
			// Only a container can tell b's server is up.
			testenv.Eventually(t, 10*time.Second, "hello server in b", func() error {
				_, err := w.request(a.ns, "tcp", ipB, helloPort)
				return err
			})
			if out := w.host.MustRun("ip", "-o", "addr", "show", "dev", "dneti"); strings.Contains(out, "inet ") {
				t.Errorf("the isolated bridge has an address:\n%s", out)
			}
			if out := a.ns.MustRun("ip", "route", "show", "default"); strings.TrimSpace(out) != "" {
				t.Errorf("a container of the isolated network has a default route: %s", out)
			}
			w.client.MustRun("ip", "route", "add", "172.23.0.0/16", "via", hostAddr)
			for _, proto := range []string{"tcp", "udp"} {
				w.mustReach(a.ns, proto, ipB, helloPort)
				w.mustNotReach(w.client, proto, ipA, helloPort)
				w.mustNotReach(w.host, proto, ipA, helloPort)
			}
			w.mustNotReach(a.ns, "tcp", hostAddr, 7501)
			// The control: a container of the default network reaches the host's service.
			c := w.newContainer("c")
			w.addTo(w.conflist(""), c, nil)
			w.mustReach(c.ns, "tcp", hostAddr, 7501)
		})
	}
}
