// Package testenv builds the test topology: network namespaces that play
// the host, the containers and an external client, so tests never touch the
// real host's links, rules or sysctls and can run in parallel.
package testenv

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// RequireRoot skips a test that needs root, except under CI where a skip
// would hide that the suite did not run. In a unit run (make unit sets
// DNET_TESTS=unit) it always skips: make integration runs those tests.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Getenv("DNET_TESTS") == "unit" {
		t.Skip("a root test: make integration runs it")
	}
	if os.Geteuid() != 0 {
		Missing(t, "this test needs root: network namespaces and netfilter")
	}
}

// Prefix returns a short unique name prefix for one test's objects.
func Prefix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "dnt" + hex.EncodeToString(b)
}

// NS is a named network namespace made by a test (or by the bench).
type NS struct {
	Name string
	t    testing.TB // nil for a namespace made with AddNS
}

// Path is the namespace's bind-mount, as CNI_NETNS wants it.
func (n *NS) Path() string { return "/var/run/netns/" + n.Name }

// AddNS creates a namespace with loopback up and IPv4 forwarding off;
// the caller deletes it. A new namespace inherits the host's IPv4
// sysctls at creation, ip_forward among them (1 on any host running
// Docker or Kubernetes): a test starts from the kernel's default instead,
// and sets what it needs otherwise.
func AddNS(name string) (*NS, error) {
	if out, err := run("ip", "netns", "add", name); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
	}
	n := &NS{Name: name}
	if out, err := n.Run("sh", "-c", "ip link set lo up && echo 0 >/proc/sys/net/ipv4/ip_forward"); err != nil {
		_ = n.Delete()
		return nil, fmt.Errorf("in netns %s: loopback up, ip_forward 0: %v: %s", name, err, out)
	}
	return n, nil
}

// Delete removes the namespace, and with it every link and rule in it.
func (n *NS) Delete() error { return exec.Command("ip", "netns", "del", n.Name).Run() }

// NewNS creates a namespace with loopback up and deletes it at cleanup.
func NewNS(t testing.TB, name string) *NS {
	t.Helper()
	n, err := AddNS(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Delete() })
	n.t = t
	return n
}

// Run runs a command inside the namespace and returns its combined output.
func (n *NS) Run(args ...string) (string, error) {
	return run(append([]string{"ip", "netns", "exec", n.Name, lookTool(args[0])}, args[1:]...)...)
}

// MustRun is Run that fails the test on error.
func (n *NS) MustRun(args ...string) string {
	n.t.Helper()
	out, err := n.Run(args...)
	if err != nil {
		n.t.Fatalf("in netns %s: %s: %v\n%s", n.Name, strings.Join(args, " "), err, out)
	}
	return out
}

// Start runs a long-lived command in the namespace; it is killed (by PID)
// at cleanup.
func (n *NS) Start(args ...string) *exec.Cmd {
	n.t.Helper()
	cmd := exec.Command(lookTool("ip"), append([]string{"netns", "exec", n.Name, lookTool(args[0])}, args[1:]...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		n.t.Fatalf("start %v in %s: %v", args, n.Name, err)
	}
	n.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// Link connects two namespaces with a veth pair and addresses both ends
// (addresses in CIDR form; "" leaves an end unaddressed).
func Link(t testing.TB, a *NS, aIf, aAddr string, b *NS, bIf, bAddr string) {
	t.Helper()
	if err := Connect(a, aIf, aAddr, b, bIf, bAddr); err != nil {
		t.Fatal(err)
	}
}

// Connect is Link for callers without a testing.TB: it reports an error
// and leaves no half-made pair behind.
func Connect(a *NS, aIf, aAddr string, b *NS, bIf, bAddr string) error {
	tmpA, tmpB := Prefix()+"a", Prefix()+"b"
	if out, err := run("ip", "link", "add", tmpA, "type", "veth", "peer", "name", tmpB); err != nil {
		return fmt.Errorf("create veth pair: %v: %s", err, out)
	}
	steps := [][]string{
		{"ip", "link", "set", tmpA, "netns", a.Name},
		{"ip", "link", "set", tmpB, "netns", b.Name},
	}
	for _, e := range []struct {
		ns        *NS
		tmp, name string
		addr      string
	}{{a, tmpA, aIf, aAddr}, {b, tmpB, bIf, bAddr}} {
		steps = append(steps, []string{"ip", "-n", e.ns.Name, "link", "set", e.tmp, "name", e.name})
		if e.addr != "" {
			steps = append(steps, []string{"ip", "-n", e.ns.Name, "addr", "add", e.addr, "dev", e.name, "nodad"})
		}
		steps = append(steps, []string{"ip", "-n", e.ns.Name, "link", "set", e.name, "up"})
	}
	for _, s := range steps {
		if out, err := run(s...); err != nil {
			// Either end deletes the pair: try each place the failed step may have left it.
			_ = exec.Command("ip", "link", "del", tmpA).Run()
			_ = exec.Command("ip", "-n", a.Name, "link", "del", tmpA).Run()
			_ = exec.Command("ip", "-n", a.Name, "link", "del", aIf).Run()
			return fmt.Errorf("%s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	return nil
}

// MustRun runs a command in the test's own namespace.
func MustRun(t testing.TB, args ...string) string {
	t.Helper()
	out, err := run(args...)
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func run(args ...string) (string, error) {
	cmd := exec.Command(lookTool(args[0]), args[1:]...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Bin returns the directory holding the built plugins, dnetctl and hello: $DNET_BIN
// (set by the Makefile), or a one-off build of this checkout.
func Bin(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("DNET_BIN"); d != "" {
		return d
	}
	buildOnce.Do(func() {
		root := repoRoot()
		buildDir, buildErr = os.MkdirTemp("", "dnet-bin-")
		if buildErr != nil {
			return
		}
		// The Makefile's MAINS: every main package under these folders.
		cmd := exec.Command("go", "build", "-o", buildDir+"/", "./plugins/main/...", "./plugins/ipam/...", "./plugins/meta/...", "./plugins/cmd/dnetctl", "./test/hello")
		// Static, as make builds them: hello runs alone in FROM-scratch images.
		cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build the plugins: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

// Main runs a package's tests and then removes Bin's one-off build, which
// outlives every single test, and runs after: what else outlives them.
// Packages calling Bin use it as their TestMain.
func Main(m *testing.M, after ...func()) {
	code := m.Run()
	for _, f := range after {
		f()
	}
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// Eventually retries fn until it succeeds or the timeout passes; it is for
// waiting on a server to come up, never for asserting speed.
func Eventually(t testing.TB, timeout time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = fn(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}
