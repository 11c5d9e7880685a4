package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
)

// crashSyscalls are the calls through which a plugin changes the kernel
// (netlink, execs of iptables-restore) or the disk (records,
// reservations, claims, locks).
const crashSyscalls = "sendto,sendmsg,write,openat,renameat,renameat2,rename,unlinkat,unlink,mkdirat,mkdir,execve"

// crashBin is a copy of the plugin directory where plugin runs under
// strace, which SIGKILLs it at the Nth of crashSyscalls that a thread of
// it makes during ADD, or the command DNET_CRASH_CMD names (N from
// DNET_CRASH_AT): no hook in the plugins.
func (w *world) crashBin(plugin string) string {
	dir := filepath.Join(w.dir, "crash-"+plugin)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		w.t.Fatal(err)
	}
	for _, p := range []string{"bridge", "host-local", "portmap"} {
		target := filepath.Join(w.bin, p)
		if p != plugin {
			if err := os.Symlink(target, filepath.Join(dir, p)); err != nil {
				w.t.Fatal(err)
			}
			continue
		}
		script := fmt.Sprintf(`#!/bin/sh
if [ "$CNI_COMMAND" = "${DNET_CRASH_CMD:-ADD}" ] && [ -n "$DNET_CRASH_AT" ]; then
	exec strace -f -qq -o /dev/null --inject=%s:signal=KILL:when=$DNET_CRASH_AT %s
fi
exec %s
`, crashSyscalls, target, target)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(script), 0o755); err != nil {
			w.t.Fatal(err)
		}
	}
	return dir
}

// TestCrashInjection kills each plugin of the chain at every point of its
// ADD where it changes the kernel or the disk, and checks that the
// runtime's following DEL, and separately a GC, leave nothing: no
// reservation, record, claim, rule or element, link, or interface in the
// container's netns, and, the container being the network's only one
// and the host's forwarding off before, nothing of the network's or the
// host's. The bridge and portmap are killed at every such point of their
// DEL too (where the network's and the host's state go), followed by the
// runtime's DEL again, or a GC.
func TestCrashInjection(t *testing.T) {
	for _, backend := range backends {
		for _, tc := range []struct{ plugin, cmd string }{
			{"bridge", "ADD"}, {"host-local", "ADD"}, {"portmap", "ADD"}, {"bridge", "DEL"}, {"portmap", "DEL"},
		} {
			plugin := tc.plugin
			t.Run(backend+"/"+plugin+"/"+tc.cmd, func(t *testing.T) {
				t.Parallel()
				w := newWorld(t, backend)
				w.host.MustRun("sysctl", "-qw", "net.ipv4.ip_forward=0")
				w.cniPath = []string{w.crashBin(plugin)}
				env := w.env
				crashes, quiet := 0, 0
				for n := 1; quiet < 5 && n <= 400; n++ {
					crash := append(append([]string{}, env...), fmt.Sprintf("DNET_CRASH_AT=%d", n), "DNET_CRASH_CMD="+tc.cmd)
					c := w.newContainer(fmt.Sprintf("k%d", n))
					ms := both(8600, "")
					var err error
					if tc.cmd == "ADD" {
						w.env = crash
						_, err = w.libcni(gcVersion).add(c, ms)
					} else {
						if _, err := w.libcni(gcVersion).add(c, ms); err != nil {
							t.Fatalf("ADD before the DEL to crash: %v", err)
						}
						w.env = crash
						err = w.libcni(gcVersion).del(c, ms)
					}
					if err == nil {
						quiet++ // no thread of the plugin reached its Nth such call
					} else {
						crashes, quiet = crashes+1, 0
					}
					w.env = env
					d := w.libcni(gcVersion)
					if n%2 == 1 {
						if err := d.del(c, ms); err != nil {
							t.Fatalf("crash at %d: the runtime's DEL: %v", n, err)
						}
					} else {
						_ = os.RemoveAll(filepath.Join(w.dir, "cache"))
						if err := d.cni.GCNetworkList(context.Background(), d.list, &libcni.GCArgs{}); err != nil {
							t.Fatalf("crash at %d: GC: %v", n, err)
						}
					}
					w.assertNothingOf(c, fmt.Sprintf("crash at %d, then %s", n, map[bool]string{true: "DEL", false: "GC"}[n%2 == 1]))
					if t.Failed() {
						return
					}
				}
				if crashes == 0 {
					t.Fatalf("no ADD of %s was killed", plugin)
				}
				t.Logf("%s/%s: %d ADDs killed, each followed by DEL or GC, nothing left", backend, plugin, crashes)
			})
		}
	}
}

// assertNothingOf checks that nothing of c is left anywhere, without
// knowing which address it was given.
func (w *world) assertNothingOf(c *container, when string) {
	w.t.Helper()
	rules := w.natRules() + w.host.MustRun(w.iptables+"-save", "-t", "filter")
	for _, needle := range []string{c.id, c.owner().Tag()} {
		if strings.Contains(rules, needle) {
			w.t.Errorf("%s: the rules still mention %q:\n%s", when, needle, rules)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(w.ipamDir(), netName))
	for _, e := range entries {
		data, _ := os.ReadFile(filepath.Join(w.ipamDir(), netName, e.Name()))
		if strings.Contains(string(data), c.id) {
			w.t.Errorf("%s: reservation %s remains", when, e.Name())
		}
	}
	for _, glob := range []string{"*/" + c.owner().Tag() + ".json", "hostports/owners/" + c.owner().Tag() + ".json"} {
		if left, _ := filepath.Glob(filepath.Join(w.stateDir(), glob)); len(left) > 0 {
			w.t.Errorf("%s: %v remain", when, left)
		}
	}
	if claims, _ := filepath.Glob(filepath.Join(w.stateDir(), "hostports", "*.json")); len(claims) > 0 {
		w.t.Errorf("%s: claims %v remain", when, claims)
	}
	if out, err := w.host.Run("ip", "link", "show", c.owner().HostVeth()); err == nil {
		w.t.Errorf("%s: host veth remains: %s", when, out)
	}
	if out, err := c.ns.Run("ip", "link", "show", "eth0"); err == nil {
		w.t.Errorf("%s: eth0 remains in the container: %s", when, out)
	}
	// The network's and the host's: c was the only attachment.
	_ = filepath.WalkDir(w.stateDir(), func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() && !strings.HasSuffix(p, ".lock") && !strings.HasPrefix(e.Name(), ".") {
			w.t.Errorf("%s: %s remains", when, p)
		}
		return nil
	})
	for _, needle := range []string{"br=docker0", "fwd-guard"} {
		if strings.Contains(rules, needle) {
			w.t.Errorf("%s: the rules still hold %q", when, needle)
		}
	}
	if out, _ := w.host.Run("nft", "list", "set", "ip", "dnet", "hairpin_ifs"); strings.Contains(out, "docker0") {
		w.t.Errorf("%s: hairpin_ifs still holds docker0", when)
	}
	if got := w.forwarding(); got != "0" {
		w.t.Errorf("%s: ip_forward is %s, want 0 as found", when, got)
	}
}
