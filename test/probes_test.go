package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
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
			nbr := w.newNearNeighbour()
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
			// Every request at once: a refused one waits out its timeout.
			probe := func(when string, addrs []string, addrs6 []string) {
				type req struct {
					from  *testenv.NS
					addr  string
					proto string
					reach bool
				}
				var reqs []req
				for _, proto := range []string{"tcp", "udp"} {
					for _, a := range addrs {
						reqs = append(reqs, req{nbr, a, proto, true}, req{w.client, a, proto, false})
					}
					for _, a := range addrs6 {
						reqs = append(reqs, req{w.client, a, proto, true}, req{w.host, a, proto, false})
					}
				}
				errs := make([]error, len(reqs))
				var wg sync.WaitGroup
				for i, r := range reqs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						_, err := w.request(r.from, r.proto, r.addr, portShared)
						if (err == nil) != r.reach {
							errs[i] = fmt.Errorf("%s %s:%d from %s: reached=%v (%v), want %v", r.proto, r.addr, portShared, r.from.Name, err == nil, err, r.reach)
						}
					}()
				}
				wg.Wait()
				if err := errors.Join(errs...); err != nil {
					t.Fatalf("%s: %v", when, err)
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
					if got := w.mustSegment(w.client, ip, closed, flags); got != "no reply" {
						t.Errorf("%s segment to closed port %s:%d of a protected container: %s, want no reply", flags, ip, closed, got)
					}
				}
				w.mustNotReach(w.client, "tcp", ip, helloPort) // untracked both ways
			}

			// The control: without the drop, the same probes get through.
			w.dropDirectRoutingDrops()
			for _, ip := range []string{ip4, ip6} {
				for _, flags := range []string{"FIN", "none", "FIN,PSH,URG"} {
					if got := w.mustSegment(w.client, ip, closed, flags); !strings.Contains(got, "RST") {
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

// segment sends one bare TCP segment from ns to target (host:port) and
// returns what came back ("reply: FLAGS" or "no reply"); safe to call
// from several goroutines at once.
func (w *world) segment(from *testenv.NS, target, flags string) (string, error) {
	out, err := from.Run(filepath.Join(w.bin, "hello"), "segment", target, flags)
	if err != nil {
		return "", fmt.Errorf("hello segment %s %s from %s: %v: %s", target, flags, from.Name, err, out)
	}
	return strings.TrimSpace(out), nil
}

// mustSegment is segment for a test's own goroutine.
func (w *world) mustSegment(from *testenv.NS, ip string, port int, flags string) string {
	w.t.Helper()
	got, err := w.segment(from, net.JoinHostPort(ip, fmt.Sprint(port)), flags)
	if err != nil {
		w.t.Fatal(err)
	}
	return got
}

// dropDirectRoutingDrops deletes the direct-routing drops of both
// families: the nftables guard_protected chain's, or the iptables DNET-GUARD chains'.
func (w *world) dropDirectRoutingDrops() {
	families := []string{"ip"}
	if w.ipv6 {
		families = append(families, "ip6")
	}
	if w.backend == "iptables" {
		w.host.MustRun(w.iptables, "-t", "mangle", "-F", "DNET-GUARD")
		if w.ipv6 {
			w.host.MustRun(strings.Replace(w.iptables, "iptables", "ip6tables", 1), "-t", "mangle", "-F", "DNET-GUARD")
		}
		return
	}
	for _, family := range families {
		out := w.host.MustRun("nft", "-a", "list", "chain", family, "dnet", "guard_protected")
		m := regexp.MustCompile(`(?m)@fwd_members drop # handle (\d+)$`).FindStringSubmatch(out)
		if m == nil {
			w.t.Fatalf("no direct-routing drop in the %s guard_protected chain:\n%s", family, out)
		}
		w.host.MustRun("nft", "delete", "rule", family, "dnet", "guard_protected", "handle", m[1])
	}
}

// TestIsolatedNetworkRefusesPublishing: a mapping on a gatewayMode
// isolated network is a config error (code 7) that changes nothing of
// the host: no route_localnet on the bridge or on the uplink the route to
// the container would take, no hairpin interface, no port rule. A network
// whose route leaves by the uplink (no gateway on its bridge) publishes,
// and portmap leaves the uplink alone; the control is the default
// network, whose bridge gets both. And the host and the isolated
// containers do not reach each other over IPv6 link-local either; the
// control turns IPv6 back on on the bridge.
func TestIsolatedNetworkRefusesPublishing(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, backend)
			// A default route out of eth0: without a route of its own, the
			// isolated subnet's would be the uplink.
			w.host.MustRun("ip", "route", "add", "default", "via", clientAddr)
			iso := w.network(network{name: "iso", bridge: "dneti", subnet: "172.23.0.0/16",
				bridgeKeys: map[string]any{"gatewayMode": "isolated", "keepIPv6LinkLocal": true}})
			before := w.sysctls("eth0") + " dneti=0"
			a := w.newContainer("a")
			d := w.libcniFor(iso)
			_, err := d.add(a, both(portAll, ""))
			var cniErr *types.Error
			if !errors.As(err, &cniErr) || cniErr.Code != types.ErrInvalidNetworkConfig {
				t.Fatalf("ADD with a mapping on an isolated network: %v, want error code 7", err)
			}
			if !strings.Contains(cniErr.Msg, "isolated") {
				t.Errorf("the error does not say why: %s", cniErr.Msg)
			}
			if after := w.sysctls("eth0", "dneti"); after != before {
				t.Errorf("a refused mapping changed route_localnet: before %s, after %s", before, after)
			}
			rules := w.natRules()
			for _, needle := range []string{fmt.Sprint(portAll), `"eth0"`} {
				if strings.Contains(rules, needle) {
					t.Errorf("a refused mapping left %q in the rules:\n%s", needle, rules)
				}
			}
			if recs, _ := filepath.Glob(filepath.Join(w.stateDir(), "portmap", "*")); len(recs) > 0 {
				t.Errorf("a refused mapping left records: %v", recs)
			}
			if err := d.del(a, both(portAll, "")); err != nil {
				t.Fatalf("DEL after the refused ADD: %v", err)
			}

			// A network without a gateway on its bridge: the route to its
			// container is the host's default, out of the uplink. Its
			// mapping publishes, and portmap changes nothing of eth0.
			nogw := w.network(network{name: "nogw", bridge: "dnetg", subnet: "172.24.0.0/16",
				bridgeKeys: map[string]any{"isGateway": false, "isDefaultGateway": false, "ipMasq": false}})
			g := w.newContainer("g")
			if _, err := w.libcniFor(nogw).add(g, both(portAll+1, "")); err != nil {
				t.Fatalf("ADD on a network without a gateway: %v", err)
			}
			if after := w.sysctls("eth0"); after+" dneti=0" != before {
				t.Errorf("a mapping whose route leaves by the uplink changed its route_localnet: %s, was %s", after, before)
			}
			if rules := w.natRules(); strings.Contains(rules, `"eth0"`) {
				t.Errorf("the uplink became a hairpin interface:\n%s", rules)
			}
			// The control: on a network with its gateway, the bridge is one.
			c := w.newContainer("c")
			w.addTo(w.conflist(""), c, both(portAll+2, ""))
			if backend == "nftables" && !strings.Contains(w.natRules(), `"docker0"`) {
				t.Errorf("control: docker0 is no hairpin interface:\n%s", w.natRules())
			}
			if got := strings.TrimSpace(w.host.MustRun("sysctl", "-n", "net.ipv4.conf.docker0.route_localnet")); got != "1" {
				t.Errorf("control: route_localnet on docker0 is %s", got)
			}

			// IPv6 link-local between the host and an isolated container.
			if _, err := d.add(a, nil); err != nil {
				t.Fatal(err)
			}
			ll := linkLocal(t, a.ns, "eth0") + "%25dneti"
			if out := w.host.MustRun("ip", "-6", "addr", "show", "dev", "dneti"); strings.Contains(out, "inet6") {
				t.Errorf("the isolated bridge has an IPv6 address:\n%s", out)
			}
			w.mustNotReach(w.host, "tcp", ll, helloPort)
			// The control: with IPv6 on on the bridge, the host gets in.
			w.host.MustRun("sysctl", "-qw", "net.ipv6.conf.dneti.accept_dad=0")
			w.host.MustRun("sysctl", "-qw", "net.ipv6.conf.dneti.disable_ipv6=0")
			testenv.Eventually(t, 10*time.Second, "the host over link-local", func() error {
				_, err := w.request(w.host, "tcp", ll, helloPort)
				return err
			})
		})
	}
}

// sysctls are the route_localnet values of ifaces in the host netns.
func (w *world) sysctls(ifaces ...string) string {
	var out []string
	for _, ifc := range ifaces {
		out = append(out, ifc+"="+strings.TrimSpace(w.host.MustRun("sysctl", "-n", "net.ipv4.conf."+ifc+".route_localnet")))
	}
	return strings.Join(out, " ")
}

// linkLocal is ifc's IPv6 link-local address in ns, once it has one.
func linkLocal(t *testing.T, ns *testenv.NS, ifc string) string {
	var addr string
	testenv.Eventually(t, 10*time.Second, "a link-local address on "+ifc, func() error {
		out := ns.MustRun("ip", "-6", "-o", "addr", "show", "dev", ifc, "scope", "link")
		f := strings.Fields(out)
		for i, s := range f {
			if s == "inet6" && i+1 < len(f) && !strings.Contains(out, "tentative") {
				addr = strings.Split(f[i+1], "/")[0]
				return nil
			}
		}
		return fmt.Errorf("none yet: %s", out)
	})
	return addr
}

// TestReusedAddressAnswersAtOnce: a container that gets the address of
// one just deleted (another MAC) answers the host and the other
// containers of its bridge at once, IPv4 and IPv6, though each still has
// the old MAC in its neighbour table (the control, checked before the
// ADD): the host's entries go at ADD, and the new container announces
// its addresses (gratuitous ARP, unsolicited neighbour advertisement).
// The address comes back either by name (CNI_ARGS IP=) or by host-local's
// round robin wrapping round a range of two, where the first container
// of each address was a first use, not announced (no neighbour could
// know its address), and the reuse must be.
func TestReusedAddressAnswersAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ip4, ip6 string
		byName   bool
	}{
		{"requested by name", "172.17.0.50", "fd00:17::50", true},
		{"round robin wrapped", "172.17.0.51", "fd00:17::51", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, "nftables")
			w.dualStack()
			n := network{file: "dual-stack/10-docker0.conflist"}
			if !tc.byName {
				n.bridgeKeys = map[string]any{"ipam": map[string]any{"type": "host-local", "dataDir": w.ipamDir(), "ranges": []any{
					[]any{map[string]any{"subnet": "172.17.0.0/16", "gateway": "172.17.0.1", "rangeStart": "172.17.0.50", "rangeEnd": "172.17.0.51"}},
					[]any{map[string]any{"subnet": "fd00:17::/64", "gateway": "fd00:17::1", "rangeStart": "fd00:17::50", "rangeEnd": "fd00:17::51"}},
				}}}
			}
			conf := w.network(n)
			reusedAddressAnswers(t, w, conf, tc.ip4, tc.ip6, tc.byName)
		})
	}
}

func reusedAddressAnswers(t *testing.T, w *world, conf []byte, ip4, ip6 string, byName bool) {
	list, err := libcni.ConfListFromBytes(conf)
	if err != nil {
		t.Fatal(err)
	}
	cni := libcni.NewCNIConfigWithCacheDir(w.cniPath, filepath.Join(w.dir, "cache"), testenv.NetnsExec(w.host.Name, w.env))
	rt := func(c *container) *libcni.RuntimeConf {
		r := &libcni.RuntimeConf{ContainerID: c.id, NetNS: c.ns.Path(), IfName: "eth0"}
		if byName {
			r.Args = [][2]string{{"IP", ip4 + "," + ip6}}
		}
		return r
	}
	peer := w.newContainer("peer")
	w.addTo(conf, peer, nil)
	old := w.newContainer("old")
	if _, err := cni.AddNetworkList(context.Background(), list, rt(old)); err != nil {
		t.Fatal(err)
	}
	if got := containerIP(t, old); got != ip4 {
		t.Fatalf("the old container has %s, want %s", got, ip4)
	}
	for _, ip := range []string{ip4, ip6} {
		w.waitServing(old, ip)
		w.mustReach(peer.ns, "tcp", ip, helloPort)
	}
	oldMAC := macOf(t, old.ns)
	if err := cni.DelNetworkList(context.Background(), list, rt(old)); err != nil {
		t.Fatal(err)
	}
	// The control: the old MAC is still what the host and the peer know.
	for _, ns := range []*testenv.NS{w.host, peer.ns} {
		for _, ip := range []string{ip4, ip6} {
			if out := ns.MustRun("ip", "neigh", "show", ip); !strings.Contains(out, oldMAC) {
				t.Fatalf("control: %s has no entry for %s with the old MAC %s: %q", ns.Name, ip, oldMAC, out)
			}
		}
	}
	reused := w.newContainer("new")
	if _, err := cni.AddNetworkList(context.Background(), list, rt(reused)); err != nil {
		t.Fatal(err)
	}
	if got := containerIP(t, reused); got != ip4 {
		t.Fatalf("the new container has %s, want the old one's %s", got, ip4)
	}
	newMAC := macOf(t, reused.ns)
	for _, ip := range []string{ip4, ip6} {
		w.waitServing(reused, ip) // the host, within waitServing's first tries
		testenv.Eventually(t, 3*time.Second, "the peer learning "+ip+"'s new MAC", func() error {
			if out := peer.ns.MustRun("ip", "neigh", "show", ip); !strings.Contains(out, newMAC) {
				return fmt.Errorf("%q", out)
			}
			return nil
		})
		w.mustReach(peer.ns, "tcp", ip, helloPort)
	}
}

// macOf is eth0's MAC in ns.
func macOf(t *testing.T, ns *testenv.NS) string {
	out := ns.MustRun("cat", "/sys/class/net/eth0/address")
	return strings.TrimSpace(out)
}
