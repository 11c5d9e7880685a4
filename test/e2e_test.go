package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const (
	portAll      = 8080 // published on every host address
	portLocal    = 9090 // published on 127.0.0.1 only
	portBound    = 9091 // published on hostAddr2 only
	portSibling  = 8081 // c2's port
	clientServer = 6000 // hello server in the client netns, for outbound traffic
)

func c1Mappings() []mapping {
	ms := both(portAll, "")
	ms = append(ms, both(portLocal, "127.0.0.1")...)
	return append(ms, both(portBound, hostAddr2)...)
}

// TestPublishedPorts follows a packet through a published port and the
// corner cases around it (UDP, hairpin, 127.0.0.1, a bound host address,
// DEL), once through libcni and once through cnitool.
func TestPublishedPorts(t *testing.T) {
	for _, backend := range backends {
		for _, name := range []string{"libcni", "cnitool"} {
			t.Run(backend+"/"+name, func(t *testing.T) {
				t.Parallel()
				w := newWorld(t, backend)
				var d driver
				if name == "libcni" {
					d = w.libcni("")
				} else {
					d = w.cnitool()
				}
				testPublishedPorts(t, w, d)
			})
		}
	}
}

func testPublishedPorts(t *testing.T, w *world, d driver) {
	c1, c2 := w.newContainer("c1"), w.newContainer("c2")
	w.client.Start(filepath.Join(w.bin, "hello"), "serve", "-port", fmt.Sprint(clientServer))

	if _, err := d.add(c1, c1Mappings()); err != nil {
		t.Fatalf("ADD c1: %v", err)
	}
	if _, err := d.add(c2, both(portSibling, "")); err != nil {
		t.Fatalf("ADD c2: %v", err)
	}
	ip1, ip2 := containerIP(t, c1), containerIP(t, c2)
	if ip1 == ip2 {
		t.Fatalf("both containers got %s", ip1)
	}
	w.waitServing(c1, ip1)
	w.waitServing(c2, ip2)
	if err := d.check(c1, c1Mappings()); err != nil {
		t.Fatalf("CHECK c1 right after ADD: %v", err)
	}

	for _, proto := range []string{"tcp", "udp"} {
		t.Run(proto, func(t *testing.T) {
			w := *w
			w.t = t
			// 1. external client -> host address: DNAT only, the container sees the client.
			if peer := w.mustReach(w.client, proto, hostAddr, portAll); peer != clientAddr {
				t.Errorf("1: container saw %s, want the client's own %s (no SNAT on this path)", peer, clientAddr)
			}
			// 2. the host itself, over loopback and over its own address.
			w.mustReach(w.host, proto, "127.0.0.1", portAll)
			w.mustReach(w.host, proto, hostAddr, portAll)
			// 3. hairpin: a sibling container through the host address.
			w.mustReach(c2.ns, proto, hostAddr, portAll)
			// 4. hairpin to self: c1 through its own published port.
			w.mustReach(c1.ns, proto, hostAddr, portAll)
			w.mustReach(c1.ns, proto, gatewayIP, portAll)
			// 5. hostIP-bound mappings answer on that address only.
			w.mustReach(w.host, proto, "127.0.0.1", portLocal)
			w.mustNotReach(w.client, proto, hostAddr, portLocal)
			w.mustReach(w.client, proto, hostAddr2, portBound)
			w.mustNotReach(w.client, proto, hostAddr, portBound)
			// 6. outbound: the container reaches the client, masqueraded to the host's address.
			if peer := w.mustReach(c1.ns, proto, clientAddr, clientServer); peer != hostAddr {
				t.Errorf("6: client saw %s, want the host's address %s (masquerade)", peer, hostAddr)
			}
			// c2's own port still answers.
			w.mustReach(w.client, proto, hostAddr, portSibling)
			// 7. container to container on the bridge, by address: no NAT.
			if peer := w.mustReach(c2.ns, proto, ip1, helloPort); peer != ip2 {
				t.Errorf("7: c1 saw %s, want c2's own %s", peer, ip2)
			}
		})
	}

	// CHECK notices a missing rule.
	if w.backend == "iptables" {
		w.host.MustRun(w.iptables, "-t", "nat", "-F", "DNET-DN-"+c1.owner().Tag())
	} else {
		w.host.MustRun("nft", "delete", "element", "ip", "dnet", "hostports", fmt.Sprintf("{ tcp . %d }", portAll))
	}
	if err := d.check(c1, c1Mappings()); err == nil {
		t.Errorf("CHECK passed with c1's DNAT for %d/tcp removed", portAll)
	}

	// 7. DEL leaves nothing of c1 and keeps c2 working.
	if err := d.del(c1, c1Mappings()); err != nil {
		t.Fatalf("DEL c1: %v", err)
	}
	w.assertGone(c1, ip1, []int{portAll, portLocal, portBound})
	if err := d.del(c1, c1Mappings()); err != nil {
		t.Errorf("second DEL c1: %v", err)
	}
	w.mustReach(w.client, "tcp", hostAddr, portSibling)
	w.mustReach(w.client, "udp", hostAddr, portSibling)
	w.mustNotReach(w.client, "tcp", hostAddr, portAll)

	// CHECK notices missing forwarding rules too.
	if err := d.check(c2, both(portSibling, "")); err != nil {
		t.Fatalf("CHECK c2: %v", err)
	}
	if w.backend == "iptables" {
		w.host.MustRun(w.iptables, "-t", "mangle", "-F", "DNET-ISOLATE")
	} else {
		w.host.MustRun("nft", "delete", "element", "ip", "dnet", "fwd_members", fmt.Sprintf("{ %s . \"%s\" }", ip2, netName))
	}
	if err := d.check(c2, both(portSibling, "")); err == nil || !strings.Contains(err.Error(), "forwarding") {
		t.Errorf("CHECK with c2's forwarding rules removed: %v", err)
	}

	// DEL after the container's netns is gone still cleans up.
	testDelWithoutNetns(t, w, d, c2, ip2)
}

func testDelWithoutNetns(t *testing.T, w *world, d driver, c *container, ip string) {
	if out, err := w.host.Run("ip", "netns", "del", c.ns.Name); err != nil {
		t.Fatalf("delete netns %s: %v %s", c.ns.Name, err, out)
	}
	if err := d.del(c, both(portSibling, "")); err != nil {
		t.Fatalf("DEL with the netns gone: %v", err)
	}
	w.assertGone(c, ip, []int{portSibling})
}

// TestParallelContainers: 100 containers added at once and then deleted
// at once, three times in a row on one network: distinct addresses,
// every published port answering while up, and nothing left after each
// round (rules, elements, reservations, records, claims, veths, UDP
// conntrack entries).
func TestParallelContainers(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, backend)
			cs := make([]*container, 100)
			for i := range cs {
				cs[i] = w.newContainer(fmt.Sprintf("p%d", i))
			}
			for round := 1; round <= 3; round++ {
				t.Run(fmt.Sprintf("round%d", round), func(t *testing.T) {
					w := *w
					w.t = t
					testParallelContainers(t, &w, cs)
				})
				if t.Failed() {
					return
				}
			}
		})
	}
}

func testParallelContainers(t *testing.T, w *world, cs []*container) {
	d := w.libcni("")
	n := len(cs)
	port := func(i int) int { return 8100 + i }

	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range cs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, errs[i] = d.add(cs[i], both(port(i), ""))
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("parallel ADD %d: %v", i, err)
		}
	}
	seen := map[string]int{}
	ips := make([]string, n)
	for i, c := range cs {
		ips[i] = containerIP(t, c)
		if j, dup := seen[ips[i]]; dup {
			t.Fatalf("containers %d and %d both got %s", j, i, ips[i])
		}
		seen[ips[i]] = i
	}
	for i, c := range cs {
		w.waitServing(c, ips[i])
		for _, proto := range []string{"tcp", "udp"} {
			if peer := w.mustReach(w.client, proto, hostAddr, port(i)); peer != clientAddr {
				t.Errorf("container %d via %s saw %s, want %s", i, proto, peer, clientAddr)
			}
		}
	}

	for i := range cs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = d.del(cs[i], both(port(i), ""))
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("parallel DEL %d: %v", i, err)
		}
	}
	for i, c := range cs {
		w.assertGone(c, ips[i], []int{port(i)})
	}
	rules := w.natRules()
	if strings.Contains(rules, "-A DNET-HOSTPORTS") || strings.Contains(rules, "-A DNET-MASQ") || strings.Contains(rules, ":DNET-DN-") {
		t.Errorf("after DEL of every container the nat table still has per-container rules:\n%s", rules)
	}
	if strings.Contains(rules, "net="+netName+" id=") {
		t.Errorf("after DEL of every container nftables still holds per-container elements:\n%s", rules)
	}
	if out := w.host.MustRun("ip", "-o", "link", "show", "master", netName); strings.TrimSpace(out) != "" {
		t.Errorf("after DEL of every container the bridge still has ports:\n%s", out)
	}
	if left, _ := filepath.Glob(filepath.Join(w.stateDir(), "*", "*.json")); len(left) > 0 {
		t.Errorf("after DEL of every container records remain: %v", left)
	}
	if left, _ := filepath.Glob(filepath.Join(w.stateDir(), "hostports", "*", "*.json")); len(left) > 0 {
		t.Errorf("after DEL of every container claims remain: %v", left)
	}
}
