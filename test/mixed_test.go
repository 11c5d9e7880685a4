package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A mixed chain is ours and the reference's in one conflist, as a drop-in
// meets them: the reference's ptp or bridge (ipMasq on) followed by our
// portmap, and our bridge followed by the reference's portmap, firewall,
// tuning and bandwidth. Each plugin comes from where the case says; the
// IPAM is always our host-local.
type mixedChain struct {
	name    string
	theirs  []string // plugins taken from the reference
	plugins func(w *world) []map[string]any
}

var mixedChains = []mixedChain{
	{name: "ref-ptp+our-portmap", theirs: []string{"ptp"}, plugins: func(w *world) []map[string]any {
		return []map[string]any{
			{"type": "ptp", "ipMasq": true, "ipam": w.mixedIPAM("10.77.0.0/24")},
			w.ourPortmap(),
		}
	}},
	{name: "ref-bridge+our-portmap", theirs: []string{"bridge"}, plugins: func(w *world) []map[string]any {
		return []map[string]any{
			{"type": "bridge", "bridge": "dntmix0", "isGateway": true, "ipMasq": true, "hairpinMode": true, "ipam": w.mixedIPAM("10.78.0.0/24")},
			w.ourPortmap(),
		}
	}},
	{name: "our-bridge+ref-portmap,firewall,tuning,bandwidth", theirs: []string{"portmap", "firewall", "tuning", "bandwidth"}, plugins: func(w *world) []map[string]any {
		var conf map[string]any
		_ = json.Unmarshal(w.conflist(""), &conf)
		bridge := conf["plugins"].([]any)[0].(map[string]any)
		return []map[string]any{
			bridge,
			{"type": "portmap", "capabilities": map[string]any{"portMappings": true}, "backend": w.backend},
			{"type": "firewall", "backend": "iptables"},
			{"type": "tuning", "sysctl": map[string]any{"net.core.somaxconn": "512"}},
			{"type": "bandwidth", "ingressRate": 1000000000, "ingressBurst": 100000000, "egressRate": 1000000000, "egressBurst": 100000000},
		}
	}},
}

func (w *world) mixedIPAM(subnet string) map[string]any {
	return map[string]any{"type": "host-local", "dataDir": w.ipamDir(), "subnet": subnet, "routes": []any{map[string]any{"dst": "0.0.0.0/0"}}}
}

func (w *world) ourPortmap() map[string]any {
	return map[string]any{"type": "portmap", "capabilities": map[string]any{"portMappings": true}, "backend": w.backend, "stateDir": w.stateDir()}
}

// useMixed makes the plugins of the chain come from where m says.
func (w *world) useMixed(m mixedChain) {
	dir := filepath.Join(w.dir, "mixed-bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		w.t.Fatal(err)
	}
	from := map[string]string{}
	for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
		from[p] = filepath.Join(w.bin, p)
	}
	for _, p := range m.theirs {
		from[p] = refPlugin(w.t, p)
	}
	for p, path := range from {
		if err := os.Symlink(path, filepath.Join(dir, p)); err != nil {
			w.t.Fatal(err)
		}
	}
	w.cniPath = []string{dir}
}

// TestMixedChains: for each mixed chain, each backend of ours and each
// iptables flavour, a published port answers from outside, from the host
// (its address and 127.0.0.1) and by hairpin (the container itself and a
// neighbour through the host's address), for the first container on a
// fresh host and for the next one; DEL of both leaves none of our rules.
// Our nat POSTROUTING jump must come before the reference's ipMasq chain,
// whose ACCEPT of the container subnet would end the nat table before
// our hairpin masquerade.
func TestMixedChains(t *testing.T) {
	for _, m := range mixedChains {
		for _, backend := range backends {
			for _, flavour := range flavours {
				t.Run(m.name+"/"+backend+"/iptables-"+flavour, func(t *testing.T) {
					t.Parallel()
					w := newWorld(t, backend)
					w.useFlavour(flavour)
					w.useMixed(m)
					conf, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "mixed", "plugins": m.plugins(w)})
					d := w.libcniFor(conf)
					testMixedChain(t, w, d)
				})
			}
		}
	}
}

func testMixedChain(t *testing.T, w *world, d *libcniDriver) {
	first, next := w.newContainer("c1"), w.newContainer("c2")
	for i, c := range []*container{first, next} {
		port := 8400 + i
		ms := both(port, "")
		if _, err := d.add(c, ms); err != nil {
			t.Fatalf("ADD %s: %v", c.ns.Name, err)
		}
		w.waitServing(c, containerIP(t, c))
		for _, proto := range []string{"tcp", "udp"} {
			w.mustReach(w.client, proto, hostAddr, port)
			w.mustReach(w.host, proto, hostAddr, port)
			w.mustReach(w.host, proto, "127.0.0.1", port)
			w.mustReach(c.ns, proto, hostAddr, port)     // hairpin to itself
			w.mustReach(first.ns, proto, hostAddr, port) // from a neighbour (the first: itself)
		}
		if i == 1 {
			w.mustReach(next.ns, "tcp", hostAddr, 8400) // the first's port, from the next
		}
	}
	for i, c := range []*container{first, next} {
		if err := d.del(c, both(8400+i, "")); err != nil {
			t.Fatalf("DEL %s: %v", c.ns.Name, err)
		}
		if rules := w.natRules(); strings.Contains(rules, c.id) {
			t.Errorf("after DEL of %s our rules still name it:\n%s", c.ns.Name, rules)
		}
	}
}

// TestProtectionsBesideReferenceFirewall: the reference firewall plugin,
// chained after our bridge as in Podman's default conflist, puts its own
// FORWARD chain first and ACCEPTs everything its containers send. Our
// protections must hold beside it: with icc off, two containers of one
// bridge reach each other only through a published port; a container of
// another isolated network reaches no container address. The controls:
// the published port answers, and a network with icc on is reachable.
func TestProtectionsBesideReferenceFirewall(t *testing.T) {
	modes := []string{"0"}
	if _, err := os.Stat("/proc/sys/net/bridge/bridge-nf-call-iptables"); err == nil {
		modes = append(modes, "1")
	}
	for _, backend := range backends {
		for _, brnf := range modes {
			t.Run(backend+"/bridge-nf-call-iptables="+brnf, func(t *testing.T) {
				t.Parallel()
				w := newWorld(t, backend)
				w.useMixed(mixedChain{theirs: []string{"firewall"}})
				if brnf == "1" {
					w.host.MustRun("sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
				}
				firewall := []map[string]any{{"type": "firewall", "backend": "iptables"}}
				closed := w.network(network{name: "iccoff", bridge: "dnticcoff", subnet: "172.21.0.0/16", bridgeKeys: map[string]any{"icc": false}, chained: firewall})
				open := w.network(network{name: "iccon", bridge: "dnticcon", subnet: "172.22.0.0/16", chained: firewall})
				a, b, other := w.newContainer("a"), w.newContainer("b"), w.newContainer("other")
				w.addTo(closed, a, nil)
				ipB := w.addTo(closed, b, both(8093, ""))
				ipOther := w.addTo(open, other, nil)
				for _, proto := range []string{"tcp", "udp"} {
					w.mustNotReach(a.ns, proto, ipB, helloPort)     // icc off
					w.mustReach(a.ns, proto, hostAddr, 8093)        // control: the published port
					w.mustNotReach(other.ns, proto, ipB, helloPort) // isolation
					w.mustNotReach(a.ns, proto, ipOther, helloPort)
					w.mustReach(w.host, proto, ipOther, helloPort) // control: the path exists
				}
			})
		}
	}
}
