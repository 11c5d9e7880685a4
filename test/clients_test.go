package e2e

import (
	"bytes"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dockernet/cni-plugins/plugins/pkg/install"
	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// The client suites (TestClient*, `make test-clients`): each real runtime
// that drives CNI plugins — Podman, containerd's CRI through crictl, ctr
// and cnitool — runs against the built plugins in a host of its own, sends
// what it sends in production, and must leave nothing behind.

// clientHost is a world (host and client netns, see world_test.go) plus a
// private mount namespace in which the paths every CNI runtime defaults to
// are the test's own directories:
//
//	/etc/cni/net.d  conflists           /opt/cni/bin  plugins
//	/var/lib/cni    libcni's cache, host-local's store, our records
//	/dev/shm        Podman's locks      /var/lib/containers  Podman's cache
//	/run/runc, /run/containerd          runc's and the shims' state
//
// A client run there (nsenter into that mount namespace and the host netns)
// neither reads the machine's CNI configuration nor leaves state in it.
type clientHost struct {
	*world
	*privateMounts
	suite  string
	netD   string   // the private /etc/cni/net.d
	cniBin string   // the private /opt/cni/bin
	varLib string   // the private /var/lib/cni
	env    []string // for every client command
	pass   int
	failed []string
}

func newClientHost(t *testing.T, suite string, tools ...string) *clientHost {
	requireTools(t, append([]string{"unshare", "nsenter"}, tools...)...)
	w := newWorld(t, "nftables")
	h := &clientHost{world: w, suite: suite,
		netD: filepath.Join(w.dir, "net.d"), cniBin: filepath.Join(w.dir, "cni-bin"), varLib: filepath.Join(w.dir, "var-lib-cni")}
	for _, d := range []string{h.netD, h.cniBin, h.varLib} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range install.PluginBinaries { // what make install puts in /opt/cni/bin
		h.addPlugin(filepath.Join(w.bin, p))
	}
	h.privateMounts = newPrivateMounts(t, [][]string{
		{"--bind", h.netD, "/etc/cni/net.d"},
		{"--bind", h.cniBin, "/opt/cni/bin"},
		{"--bind", h.varLib, "/var/lib/cni"},
		{"-t", "tmpfs", "tmpfs", "/dev/shm"},
		{"-t", "tmpfs", "tmpfs", "/run/runc"},           // Podman's runc state
		{"-t", "tmpfs", "tmpfs", "/run/containerd"},     // the shims' sockets, runc state
		{"-t", "tmpfs", "tmpfs", "/var/lib/containers"}, // Podman's blob cache
	})
	t.Cleanup(func() {
		t.Logf("%s: %d checks: %d passed, %d failed %v", suite, h.pass+len(h.failed), h.pass, len(h.failed), h.failed)
	})
	return h
}

// addPlugin copies a plugin binary into the private /opt/cni/bin.
func (h *clientHost) addPlugin(src string) {
	data, err := os.ReadFile(src)
	if err != nil {
		h.t.Fatalf("plugin %s: %v", src, err)
	}
	if err := os.WriteFile(filepath.Join(h.cniBin, filepath.Base(src)), data, 0o755); err != nil {
		h.t.Fatal(err)
	}
}

// addReferencePlugin installs a reference plugin (firewall, tuning) that a
// client's own conflist chains after ours.
func (h *clientHost) addReferencePlugin(name string) {
	h.addPlugin(refPlugin(h.t, name))
}

// command is args run as the client runs: in the private mount namespace
// and the host netns.
func (h *clientHost) command(args ...string) *exec.Cmd {
	cmd := h.inNetns(h.host.Path(), args...)
	cmd.Env = append(os.Environ(), h.env...)
	return cmd
}

// run runs a client command, logging it and all it printed (the suite
// prints what it ran); it returns what the command wrote to stdout.
func (h *clientHost) run(args ...string) (string, error) {
	h.t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := h.command(args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	h.t.Logf("$ %s%s", strings.Join(args, " "), indentOutput(append(stdout.Bytes(), stderr.Bytes()...), err))
	if err != nil {
		return stdout.String(), fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()+stdout.String()))
	}
	return stdout.String(), nil
}

// mustRun is run for a setup step: a failure there ends the suite.
func (h *clientHost) mustRun(args ...string) string {
	h.t.Helper()
	out, err := h.run(args...)
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

func indentOutput(out []byte, err error) string {
	s := strings.TrimSpace(string(out))
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	if err != nil {
		s += fmt.Sprintf(" (%v)", err)
	}
	if s == "" {
		return ""
	}
	return "\n    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// check counts one acceptance check of the suite.
func (h *clientHost) check(what string, err error) bool {
	h.t.Helper()
	if err != nil {
		h.failed = append(h.failed, what)
		h.t.Errorf("FAIL %s: %v", what, err)
		return false
	}
	h.pass++
	h.t.Logf("ok   %s", what)
	return true
}

// reach is a request that must be answered, from a netns of the world.
func (h *clientHost) reach(from *testenv.NS, proto, addr string, port int) {
	h.t.Helper()
	_, err := h.request(from, proto, addr, port)
	h.check(fmt.Sprintf("%s %s from the %s", proto, net.JoinHostPort(addr, strconv.Itoa(port)), strings.TrimPrefix(from.Name, h.prefix+"-")), err)
}

// waitServingAt waits until the hello server of a client's container
// answers on its address, seen from the host.
func (h *clientHost) waitServingAt(ip string) {
	h.t.Helper()
	testenv.Eventually(h.t, 10*time.Second, "hello server at "+ip, func() error {
		_, err := h.request(h.host, "tcp", ip, helloPort)
		return err
	})
}

// leftovers names what the removed containers left in the host netns and
// the private /var/lib/cni: veths on the bridge, rules or elements naming
// their addresses, reservations, records, host-port claims or libcni
// cache entries. Lock files and host-local's bookkeeping may stay.
func (h *clientHost) leftovers(bridge string, ips ...string) error {
	var found []string
	if out, err := h.host.Run("ip", "-o", "link", "show", "master", bridge); err == nil && strings.TrimSpace(out) != "" {
		found = append(found, "veths on "+bridge+": "+strings.TrimSpace(out))
	}
	rules, _ := h.host.Run("nft", "list", "ruleset")
	for _, ip := range ips {
		if strings.Contains(rules, ip+" ") || strings.Contains(rules, ip+"\n") || strings.Contains(rules, ip+",") || strings.Contains(rules, ip+" .") {
			found = append(found, "the ruleset still names "+ip)
		}
	}
	keep := map[string]bool{"lock": true, ".lock": true, "complete": true}
	_ = filepath.WalkDir(h.varLib, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || keep[d.Name()] || strings.HasPrefix(d.Name(), "last_reserved_ip.") {
			return nil
		}
		rel, _ := filepath.Rel(h.varLib, p)
		found = append(found, "/var/lib/cni/"+rel)
		return nil
	})
	if len(found) > 0 {
		sort.Strings(found)
		return fmt.Errorf("left behind: %s", strings.Join(found, "; "))
	}
	return nil
}

// dnetctlCheck runs the operator's check in the client's host: it must
// find every recorded attachment complete and nothing foreign.
func (h *clientHost) dnetctlCheck() error {
	_, err := h.run(filepath.Join(h.bin, "dnetctl"), "check")
	return err
}

// listsMode runs dnetctl list in the client's host: it must name the
// gateway mode and why for some attachment ("nat: Docker's default …").
func (h *clientHost) listsMode(want string) error {
	out, err := h.run(filepath.Join(h.bin, "dnetctl"), "list")
	if err == nil && !strings.Contains(out, "gatewayMode "+want) {
		err = fmt.Errorf("dnetctl list does not say gatewayMode %s:\n%s", want, out)
	}
	return err
}

// requireTools stops the test (testenv.Missing) when a client is not
// installed (scripts/install-deps.sh installs them all).
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		testenv.Tool(t, tool)
	}
}

// refPlugin is a reference plugin v1.10.0 (make tools installs them).
func refPlugin(t *testing.T, name string) string {
	t.Helper()
	return testenv.Built(t, "REF_BIN", ".tools/ref", name)
}

// cnitoolPath is cnitool (make tools installs it).
func cnitoolPath(t *testing.T) string {
	t.Helper()
	return testenv.Built(t, "CNITOOL", ".tools/bin/cnitool", "")
}

// Mount points the machine lacks (/opt/cni/bin on a host without CNI) are
// made for the run and removed after the last test, innermost first, if
// still empty: removing one while another suite's namespace uses it would
// detach that suite's mount.
var (
	madeDirsMu sync.Mutex
	madeDirs   []string
)

func ensureMountPoint(t *testing.T, dir string) {
	madeDirsMu.Lock()
	defer madeDirsMu.Unlock()
	var missing []string
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil {
			t.Fatal(err)
		}
		madeDirs = append(madeDirs, missing[i])
	}
}

func removeMadeDirs() {
	madeDirsMu.Lock()
	defer madeDirsMu.Unlock()
	for i := len(madeDirs) - 1; i >= 0; i-- {
		_ = os.Remove(madeDirs[i])
	}
	madeDirs = nil
}

// killProcessesMentioning kills, by PID, processes whose command line
// contains marker: the shims a test's containerd started, which outlive it
// when a suite failed half-way. The marker is a path in the test's temp
// dir, so only processes this test started match.
func killProcessesMentioning(marker string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(marker)) {
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Kill()
			}
		}
	}
	time.Sleep(100 * time.Millisecond)
}

// ownCgroups removes, at cleanup, the cgroups named name (in every
// hierarchy) that the client creates and leaves behind empty: Podman's
// libpod_parent, containerd's one per namespace. Those that existed before
// the suite are left alone, and rmdir removes only empty cgroups, so no
// process is touched.
func (h *clientHost) ownCgroups(names ...string) {
	var made []string
	roots, _ := filepath.Glob("/sys/fs/cgroup/*")
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		roots = []string{"/sys/fs/cgroup"} // cgroup v2 alone
	}
	for _, root := range roots {
		for _, name := range names {
			if _, err := os.Stat(filepath.Join(root, name)); os.IsNotExist(err) {
				made = append(made, filepath.Join(root, name))
			}
		}
	}
	h.t.Cleanup(func() {
		for _, top := range made {
			var dirs []string
			_ = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					dirs = append(dirs, p)
				}
				return nil
			})
			for i := len(dirs) - 1; i >= 0; i-- {
				_ = os.Remove(dirs[i])
			}
		}
	})
}

// The runtimes name their container netns cni-… (containerd) and netns-…
// (Podman) under /run/netns. Inside the private mount namespace the netns
// is mounted there, but the empty file it is mounted on is created in the
// directory the host shares; a client stopped half-way leaves that file.
var clientNetnsPrefixes = []string{"cni-", "netns-"}

func netnsFiles() map[string]bool {
	out := map[string]bool{}
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		out[e.Name()] = true
	}
	return out
}

// removeStrayNetnsFiles removes the runtimes' netns files that appeared
// since before and are empty files, not a netns mounted in this namespace.
func removeStrayNetnsFiles(before map[string]bool) {
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for name := range netnsFiles() {
		path := filepath.Join("/run/netns", name)
		if before[name] || strings.Contains(string(mounts), " "+path+" ") {
			continue
		}
		for _, p := range clientNetnsPrefixes {
			if st, err := os.Stat(path); err == nil && strings.HasPrefix(name, p) && st.Mode().IsRegular() && st.Size() == 0 {
				_ = os.Remove(path)
			}
		}
	}
}

// rulesName fails unless our rules (see ourRules) name bridge.
func (h *clientHost) rulesName(bridge string) error {
	if !strings.Contains(h.ourRules(), bridge) {
		return fmt.Errorf("no rule of ours names %s", bridge)
	}
	return nil
}

// namesNothing fails when our rules or the plugins' records name any of
// needles: a removed network's bridge, subnet, ports. Rules of the other
// plugins a client chains (the reference firewall's isolation, say) are
// theirs to remove.
func (h *clientHost) namesNothing(needles ...string) error {
	var found []string
	for _, l := range strings.Split(h.ourRules(), "\n") {
		for _, n := range needles {
			if strings.Contains(l, n) {
				found = append(found, l)
				break
			}
		}
	}
	if err := h.leftovers(needles[0]); err != nil {
		found = append(found, err.Error())
	}
	if len(found) > 0 {
		return fmt.Errorf("left behind:\n%s", strings.Join(found, "\n"))
	}
	return nil
}

// ourRules are the rules of ours on the host: our nftables tables, and
// every iptables rule (both families, both flavours) in a chain of ours
// or carrying our comment.
func (h *clientHost) ourRules() string {
	var b strings.Builder
	for _, t := range []string{"ip", "ip6"} {
		out, _ := h.host.Run("nft", "list", "table", t, "dnet")
		b.WriteString(out)
	}
	for _, cmd := range []string{"iptables-save", "ip6tables-save", "iptables-legacy-save", "ip6tables-legacy-save"} {
		out, _ := h.host.Run(cmd)
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "DNET-") || strings.Contains(l, "dnet:") {
				b.WriteString(l + "\n")
			}
		}
	}
	return b.String()
}
