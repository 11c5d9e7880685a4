package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// hostState is every rule and element of the host netns, without
// counters, and every record of the state directory: what must be where
// it started once a network and everything in it are gone.
type hostState struct {
	rules   []string
	records []string
}

var counters = regexp.MustCompile(`\[\d+:\d+\]|counter packets \d+ bytes \d+`)

func (w *world) hostState() hostState {
	var s hostState
	var dump strings.Builder
	for _, cmd := range []string{w.iptables + "-save", strings.Replace(w.iptables, "iptables", "ip6tables", 1) + "-save"} {
		dump.WriteString(w.host.MustRun(cmd))
	}
	dump.WriteString(w.host.MustRun("nft", "list", "ruleset"))
	for _, l := range strings.Split(dump.String(), "\n") {
		l = strings.TrimSpace(counters.ReplaceAllString(l, ""))
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		s.rules = append(s.rules, l)
	}
	_ = filepath.WalkDir(w.stateDir(), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(p, ".lock") {
			rel, _ := filepath.Rel(w.stateDir(), p)
			s.records = append(s.records, rel)
		}
		return nil
	})
	return s
}

// TestNetworkStateGoesWithNetwork is what nerdctl's network rm and
// compose down do, 100 times: a network is made, a container with a
// published port attached, the container removed and the bridge deleted.
// Everything the network held goes with its last attachment: the rules,
// elements and records are where they were after the first network.
func TestNetworkStateGoesWithNetwork(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, backend)
			// A Docker-like host: the filter tables exist, so the
			// nftables backend adds its accepts there too.
			w.host.MustRun(w.iptables, "-P", "FORWARD", "ACCEPT")
			w.host.MustRun(strings.Replace(w.iptables, "iptables", "ip6tables", 1), "-P", "FORWARD", "ACCEPT")
			w.host.MustRun("sysctl", "-qw", "net.ipv4.ip_forward=1")
			empty := w.hostState()
			c := w.newContainer("c")
			var after1 hostState
			const cycles = 100
			for i := 1; i <= cycles; i++ {
				n := network{name: fmt.Sprintf("net%d", i), bridge: fmt.Sprintf("dnlc%d", i), subnet: fmt.Sprintf("10.%d.0.0/16", 100+i)}
				d := w.libcniFor(w.network(n))
				ms := []mapping{{HostPort: 8000 + i, ContainerPort: helloPort, Protocol: "tcp"}}
				if _, err := d.add(c, ms); err != nil {
					t.Fatalf("cycle %d: ADD: %v", i, err)
				}
				if i == 1 || i == cycles {
					w.mustReach(w.client, "tcp", hostAddr, 8000+i)
				}
				if err := d.del(c, ms); err != nil {
					t.Fatalf("cycle %d: DEL: %v", i, err)
				}
				w.host.MustRun("ip", "link", "del", n.bridge)
				if i == 1 {
					after1 = w.hostState()
				}
			}
			end := w.hostState()
			t.Logf("%s: rules and elements %d before any network, %d after the first, %d after %d; records %d, %d, %d",
				backend, len(empty.rules), len(after1.rules), len(end.rules), cycles, len(empty.records), len(after1.records), len(end.records))
			if !slices.Equal(after1.rules, end.rules) {
				t.Errorf("rules after %d networks differ from after the first:\n%s", cycles, lineDiff(after1.rules, end.rules))
			}
			if !slices.Equal(after1.records, end.records) {
				t.Errorf("records after %d networks %v, after the first %v", cycles, end.records, after1.records)
			}
			for _, l := range end.rules {
				if strings.Contains(l, "dnlc") || strings.Contains(l, "10.1") && strings.Contains(l, "/16") {
					t.Errorf("a rule names a removed network: %s", l)
				}
			}
			for _, r := range end.records {
				if !strings.HasPrefix(r, "host") {
					t.Errorf("a record outlives its network: %s", r)
				}
			}
		})
	}
}

// lineDiff lists the lines only one of a and b has.
func lineDiff(a, b []string) string {
	var out []string
	for _, l := range a {
		if !slices.Contains(b, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range b {
		if !slices.Contains(a, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}
