package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// TestDemo runs the README's demo and checks it prints Hello and cleans up.
// The demo looks at "the host" to avoid Docker's names; here a netns stands
// in for the host, once clean and once with a docker0 of its own, so the
// test never depends on (or touches) what the real machine runs.
func TestDemo(t *testing.T) {
	for _, c := range []struct {
		withDocker bool
		backend    string // "" lets the plugins choose
	}{{false, ""}, {true, "iptables"}} {
		withDocker := c.withDocker
		name := "clean host, default backend"
		if withDocker {
			name = "host with docker0, " + c.backend
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testenv.RequireRoot(t)
			bin := testenv.Bin(t)
			stand := testenv.NewNS(t, testenv.Prefix()+"-realhost")
			if withDocker {
				stand.MustRun("ip", "link", "add", "docker0", "type", "bridge")
				stand.MustRun("ip", "addr", "add", "172.17.0.1/16", "dev", "docker0")
				stand.MustRun("ip", "link", "set", "docker0", "up")
			}
			script, _ := filepath.Abs("../scripts/demo.sh")
			cmd := exec.Command("ip", "netns", "exec", stand.Name, "bash", script)
			abs := cnitoolPath(t)
			cmd.Env = append(os.Environ(), "DEMO_SKIP_SETUP=1", "DNET_BIN="+bin, "CNITOOL="+abs, "DEMO_BACKEND="+c.backend)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("demo failed: %v\n%s", err, out)
			}
			text := string(out)
			if !strings.Contains(text, "\nHello\n") {
				t.Errorf("demo did not print Hello:\n%s", text)
			}
			for _, want := range []string{"peer=192.0.2.2:", "dnat", "masquerade", "peer=192.0.2.1:", "8080/tcp on every local address -> ", "learnt on port veth", "connections now (conntrack)"} {
				if !strings.Contains(strings.ToLower(text), want) {
					t.Errorf("demo output lacks %q:\n%s", want, text)
				}
			}
			wantBackend := "(nftables)"
			if c.backend == "iptables" {
				wantBackend = "(iptables)"
			}
			if !strings.Contains(text, "Hop 1 - PREROUTING "+wantBackend) {
				t.Errorf("demo did not show the %s rules:\n%s", wantBackend, text)
			}
			if withDocker {
				if !strings.Contains(text, "already uses docker0") || !strings.Contains(text, "bridge dnet0") {
					t.Errorf("demo did not step aside from the existing docker0:\n%s", text)
				}
			}
			// Demos may run in parallel: look only for this run's objects.
			tag := regexp.MustCompile(`dndemo[0-9]+`).FindString(text)
			if tag == "" {
				t.Fatalf("demo output names no namespaces:\n%s", text)
			}
			if links := stand.MustRun("ip", "-o", "link"); strings.Contains(links, tag) {
				t.Errorf("demo left links behind:\n%s", links)
			}
			if ns := testenv.MustRun(t, "ip", "netns", "list"); strings.Contains(ns, tag+"-") {
				t.Errorf("demo left namespaces behind:\n%s", ns)
			}
		})
	}
}
