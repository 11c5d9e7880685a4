package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// TestGoneContainerCollected: a container's netns goes and its runtime
// never sends the DEL (a node crash, containerd 2.x without CNI GC). The
// guard the bridge installed when it turned forwarding on would stay
// while its record does, and drop what a later Docker forwards. dnetctl
// gc, with no conflist, finds the attachment by its missing veth and
// removes its rules, records, host ports and address, the network's
// state, the guard and the forwarding change: through libcni's cache
// when the runtime left one, else through the records alone.
func TestGoneContainerCollected(t *testing.T) {
	for _, backend := range backends {
		for _, cached := range []bool{true, false} {
			name := backend + "/records-only"
			if cached {
				name = backend + "/libcni-cache"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				w := newWorld(t, backend)
				w.host.MustRun("sysctl", "-qw", "net.ipv4.ip_forward=0")
				left := w.newRouted()
				d := w.libcni("")
				c := &container{ns: testenv.NewNS(t, w.prefix+"-gone"), id: w.prefix + "-gone-id"}
				if _, err := d.add(c, both(8600, "")); err != nil {
					t.Fatal(err)
				}
				ip := containerIP(t, c)
				// The control: the guard drops what no network of ours
				// takes part in, and forwarding is on.
				w.mustNotReach(left, "tcp", rightAddr, rightPort)
				if !w.guardPresent() || w.forwarding() != "1" {
					t.Fatalf("guard present %v, ip_forward %s: want the guard and forwarding on", w.guardPresent(), w.forwarding())
				}
				if err := c.ns.Delete(); err != nil {
					t.Fatal(err)
				}
				testenv.Eventually(t, 10*time.Second, "the veth gone with the netns", func() error {
					if _, err := w.host.Run("ip", "link", "show", c.owner().HostVeth()); err == nil {
						return os.ErrExist
					}
					return nil
				})
				cacheDir := filepath.Join(w.dir, "cache")
				if !cached {
					cacheDir = t.TempDir()
				}
				out, err := w.dnetctl("gc", "-grace", "0s", "-cni-path", w.bin, "-cache-dir", cacheDir)
				if err != nil {
					t.Fatalf("dnetctl gc: %v\n%s", err, out)
				}
				if !strings.Contains(out, "1 attachments whose container is gone collected") {
					t.Errorf("dnetctl gc said:\n%s", out)
				}
				if w.guardPresent() {
					t.Error("the forwarding guard is still installed")
				}
				if got := w.forwarding(); got != "0" {
					t.Errorf("ip_forward is %s after the collection, want 0 as found", got)
				}
				all := w.natRules() + w.host.MustRun(w.iptables+"-save")
				for _, needle := range []string{c.id, c.owner().Tag(), ip, "br=docker0", "fwd-guard"} {
					if strings.Contains(all, needle) {
						t.Errorf("the rules still name %q", needle)
					}
				}
				if out, _ := w.host.Run("nft", "list", "set", "ip", "dnet", "hairpin_ifs"); strings.Contains(out, "docker0") {
					t.Errorf("hairpin_ifs still holds docker0:\n%s", out)
				}
				_ = filepath.WalkDir(w.stateDir(), func(p string, e os.DirEntry, err error) error {
					if err == nil && !e.IsDir() && !strings.HasSuffix(p, ".lock") {
						data, _ := os.ReadFile(p)
						t.Errorf("record left: %s\n%s", p, data)
					}
					return nil
				})
				if _, err := os.Stat(filepath.Join(w.ipamDir(), netName, ip)); err == nil {
					t.Errorf("the reservation of %s is left", ip)
				}
				// A later Docker turns forwarding on: its traffic passes.
				w.host.MustRun("sysctl", "-qw", "net.ipv4.ip_forward=1")
				w.mustReach(left, "tcp", rightAddr, rightPort)
			})
		}
	}
}

// TestUninstall: dnetctl uninstall refuses while a container is attached,
// and with -force removes every rule, chain and table of ours in both
// families, sets back what the records say we changed (forwarding, the
// bridge's route_localnet) and deletes the state directory.
func TestUninstall(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, backend)
			w.dualStack()
			w.host.MustRun("sysctl", "-qw", "net.ipv4.ip_forward=0")
			w.host.MustRun(w.iptables, "-P", "FORWARD", "ACCEPT") // a filter table, as on a Docker host
			d := w.libcni("")
			c := w.newContainer("c")
			if _, err := d.add(c, both(8700, "")); err != nil {
				t.Fatal(err)
			}
			w.mustReach(w.client, "tcp", hostAddr, 8700)
			if got := strings.TrimSpace(w.host.MustRun("sysctl", "-n", "net.ipv4.conf.docker0.route_localnet")); got != "1" {
				t.Fatalf("route_localnet on docker0 is %s after ADD, want 1", got)
			}
			if out, err := w.dnetctl("uninstall"); err == nil || !strings.Contains(out, "live") {
				t.Fatalf("uninstall with a live attachment: %v\n%s", err, out)
			}
			if out, err := w.dnetctl("uninstall", "-force"); err != nil {
				t.Fatalf("uninstall -force: %v\n%s", err, out)
			}
			var all strings.Builder
			for _, cmd := range []string{"iptables-nft-save", "ip6tables-nft-save", "iptables-legacy-save", "ip6tables-legacy-save"} {
				out, _ := w.host.Run(cmd)
				all.WriteString(out)
			}
			all.WriteString(w.host.MustRun("nft", "list", "ruleset"))
			for _, needle := range []string{"DNET", "dnet"} {
				if strings.Contains(all.String(), needle) {
					t.Errorf("after uninstall the rules still hold %q:\n%s", needle, all.String())
				}
			}
			if got := w.forwarding(); got != "0" {
				t.Errorf("ip_forward %s after uninstall, want 0 as found", got)
			}
			if got := strings.TrimSpace(w.host.MustRun("sysctl", "-n", "net.ipv4.conf.docker0.route_localnet")); got != "0" {
				t.Errorf("route_localnet on docker0 is %s after uninstall, want 0 as found", got)
			}
			if _, err := os.Stat(w.stateDir()); err == nil {
				t.Errorf("the state directory %s is left", w.stateDir())
			}
		})
	}
}
