package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dnetctl runs the operator's command in the host netns.
func (w *world) dnetctl(args ...string) (string, error) {
	return w.host.Run(append([]string{filepath.Join(w.bin, "dnetctl"), "-state-dir", w.stateDir()}, args...)...)
}

// TestOperatorCommand: list shows what the records hold; check finds
// everything in place, then, after nft flush ruleset, what is missing;
// restore puts it back with no runtime involved, and traffic flows again;
// gc keeps only the attachments it is told are live.
func TestOperatorCommand(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, backend)
			d := w.libcni("")
			c1, c2 := w.newContainer("c1"), w.newContainer("c2")
			if _, err := d.add(c1, both(8500, "")); err != nil {
				t.Fatal(err)
			}
			if _, err := d.add(c2, nil); err != nil {
				t.Fatal(err)
			}
			ip1, ip2 := containerIP(t, c1), containerIP(t, c2)
			w.waitServing(c1, ip1)

			out, err := w.dnetctl("list")
			if err != nil || !strings.Contains(out, c1.id[:12]) || !strings.Contains(out, ip2) || !strings.Contains(out, "8500/tcp") {
				t.Fatalf("list: %v\n%s", err, out)
			}
			t.Logf("dnetctl list:\n%s", out)
			raw, err := w.dnetctl("list", "-json")
			var as []struct {
				ContainerID string
				Ports       []string
				Addresses   []string
			}
			if err != nil || json.Unmarshal([]byte(raw), &as) != nil || len(as) != 2 {
				t.Fatalf("list -json: %v\n%s", err, raw)
			}
			if out, err := w.dnetctl("check"); err != nil || strings.Contains(out, "MISSING") {
				t.Fatalf("check right after ADD: %v\n%s", err, out)
			}

			w.host.MustRun("nft", "flush", "ruleset")
			out, err = w.dnetctl("check")
			if err == nil || !strings.Contains(out, "MISSING") || !strings.Contains(out, "missing") {
				t.Fatalf("check after a flush: %v\n%s", err, out)
			}
			t.Logf("dnetctl check after nft flush ruleset:\n%s", out)
			if out, err := w.dnetctl("restore"); err != nil || strings.Contains(out, "MISSING") {
				t.Fatalf("restore: %v\n%s", err, out)
			}
			if out, err := w.dnetctl("restore"); err != nil {
				t.Fatalf("a second restore: %v\n%s", err, out)
			}
			for _, proto := range []string{"tcp", "udp"} {
				if peer := w.mustReach(w.client, proto, hostAddr, 8500); peer != clientAddr {
					t.Errorf("after restore the container saw %s", peer)
				}
				w.mustReach(c2.ns, proto, hostAddr, 8500)
			}
			if err := d.check(c1, both(8500, "")); err != nil {
				t.Errorf("CHECK after restore: %v", err)
			}
			saved := w.host.MustRun(w.iptables+"-save", "-t", "nat") + w.host.MustRun(w.iptables+"-save", "-t", "filter")
			seen := map[string]bool{}
			for _, l := range strings.Split(saved, "\n") {
				if strings.HasPrefix(l, "-A ") && seen[l] {
					t.Errorf("restore doubled a rule: %s", l)
				}
				seen[l] = true
			}

			conf := filepath.Join(w.dir, "docker0.conflist")
			if err := os.WriteFile(conf, w.conflist(""), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err = w.dnetctl("gc", "-conflist", conf, "-cni-path", w.bin, "-cache-dir", t.TempDir(), "-valid", c1.id+"/eth0")
			if err != nil {
				t.Fatalf("gc: %v\n%s", err, out)
			}
			w.assertGone(c2, ip2, nil)
			w.mustReach(w.client, "tcp", hostAddr, 8500)
		})
	}
}

// TestExplain: dnetctl explain follows a published port through the live
// kernel: the DNAT element or rule with its counter, the route, the bridge
// port learnt from the container's MAC, the veth pair, the forwarding and
// masquerade state, and the connections conntrack holds now.
func TestExplain(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, backend)
			c1 := w.newContainer("c1")
			bound := mapping{HostPort: 8602, ContainerPort: helloPort, Protocol: "tcp", HostIP: hostAddr2}
			if _, err := w.libcni("").add(c1, append(both(8600, ""), bound)); err != nil {
				t.Fatal(err)
			}
			ip := containerIP(t, c1)
			w.waitServing(c1, ip)
			w.mustReach(w.client, "tcp", hostAddr, 8600)
			w.mustReach(w.client, "udp", hostAddr, 8600)

			out, err := w.dnetctl("explain", "-proto", "udp", "8600")
			t.Logf("dnetctl explain -proto udp 8600:\n%s", out)
			if err != nil {
				t.Fatal(err)
			}
			veth := c1.owner().HostVeth()
			counter := map[string]string{"nftables": "counter packets ", "iptables": "["}[backend]
			for _, want := range []string{
				"8600/udp on every local address -> " + ip + ":5000",
				"network " + netName + " (backend " + backend + ")",
				counter,
				ip + " dev docker0 src " + gatewayIP,
				"learnt on port " + veth,
				veth + " (host side",
				"<-> eth0 in the container's netns",
				"udp " + clientAddr + ":",
				"-> " + hostAddr + ":8600, reply " + ip + ":5000",
				"gatewayMode nat (Docker's default, not a Kubernetes pod): from outside its bridge, only the published ports reach the container",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("explain lacks %q", want)
				}
			}
			if strings.Contains(out, "MISSING") || strings.Contains(out, "8600/tcp") {
				t.Errorf("explain -proto udp shows a missing DNAT or the tcp mapping")
			}
			w.mustReach(w.client, "tcp", hostAddr2, 8602)
			out, err = w.dnetctl("explain", "-addr", hostAddr2, "8602")
			want := map[string]string{"nftables": "map hostports_bound: " + hostAddr2 + " . tcp . 8602", "iptables": "-d " + hostAddr2 + "/32"}[backend]
			if err != nil || !strings.Contains(out, "8602/tcp on "+hostAddr2+" -> "+ip+":5000") || !strings.Contains(out, want) || strings.Contains(out, "MISSING") {
				t.Errorf("explain -addr %s 8602 (want %q): %v\n%s", hostAddr2, want, err, out)
			}
			if out, err := w.dnetctl("explain", "-addr", hostAddr, "8602"); err == nil {
				t.Errorf("explain -addr %s 8602 found a mapping bound to %s:\n%s", hostAddr, hostAddr2, out)
			}
			if out, err := w.dnetctl("explain", "8601"); err == nil || !strings.Contains(out, "not published by any recorded attachment") {
				t.Errorf("explain of an unpublished port: %v\n%s", err, out)
			}
		})
	}
}

// TestRestoreDryRun: after a partial flush, restore -dry-run prints the
// transaction that would repair it (the lost element, or the iptables
// rules, as data) and changes nothing; restore then repairs it.
func TestRestoreDryRun(t *testing.T) {
	for _, tc := range []struct{ backend, want string }{
		{"nftables", "add element ip dnet guard_protect"},
		{"iptables", "-A DNET-GUARD"},
	} {
		t.Run(tc.backend, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, tc.backend)
			c := w.newContainer("c")
			if _, err := w.libcni("").add(c, both(8800, "")); err != nil {
				t.Fatal(err)
			}
			if tc.backend == "nftables" {
				w.host.MustRun("nft", "flush", "set", "ip", "dnet", "guard_protect")
			} else {
				w.host.MustRun(w.iptables, "-t", "mangle", "-F", "DNET-GUARD")
			}
			out, err := w.dnetctl("restore", "-dry-run")
			if err != nil || !strings.Contains(out, tc.want) {
				t.Fatalf("restore -dry-run: %v, want %q in:\n%s", err, tc.want, out)
			}
			if out, err := w.dnetctl("check"); err == nil {
				t.Fatalf("check passes after a dry run: it applied something\n%s", out)
			}
			if out, err := w.dnetctl("restore"); err != nil {
				t.Fatalf("restore: %v\n%s", err, out)
			}
			if out, err := w.dnetctl("check"); err != nil {
				t.Fatalf("check after restore: %v\n%s", err, out)
			}
		})
	}
}
