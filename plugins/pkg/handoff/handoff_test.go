package handoff

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A process that exits through Teardown prints its result and exits 0;
// allowed, it leaves one child, which exits 0 once the process is gone
// and is reaped by the subreaper (this test); not allowed, none. Each
// case is run in a child of its own with this test as its subreaper.
func TestTeardown(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("Teardown starts a child on linux/amd64 only")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command to build testdata/teardowncheck")
	}
	bin := filepath.Join(t.TempDir(), "teardowncheck")
	build := exec.Command("go", "build", "-o", bin, "./testdata/teardowncheck")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building teardowncheck: %v\n%s", err, out)
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
	for _, c := range []struct {
		arg     string
		orphans int
	}{{"allow", 1}, {"", 0}} {
		cmd := exec.Command(bin, c.arg)
		out, err := cmd.Output()
		if err != nil || strings.TrimSpace(string(out)) != "result" {
			t.Fatalf("teardowncheck %q: %v, printed %q", c.arg, err, out)
		}
		orphans := 0
		for deadline := time.Now().Add(10 * time.Second); ; {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err == syscall.ECHILD {
				break // no child left
			}
			if err != nil {
				t.Fatal(err)
			}
			if pid > 0 {
				orphans++
				if !ws.Exited() || ws.ExitStatus() != 0 {
					t.Errorf("teardowncheck %q: its child ended %v, want exit 0", c.arg, ws)
				}
				continue
			}
			if time.Now().After(deadline) {
				t.Fatalf("teardowncheck %q: a child still running 10 s after the process exited", c.arg)
			}
			time.Sleep(time.Millisecond)
		}
		if orphans != c.orphans {
			t.Errorf("teardowncheck %q left %d children, want %d", c.arg, orphans, c.orphans)
		}
	}
}

// AllowIf allows only where the host reaps, and asks the host's records
// only where a child could start.
func TestAllowIf(t *testing.T) {
	t.Cleanup(func() { allowed = false })
	for _, reaps := range []bool{false, true} {
		allowed = false
		asked := false
		AllowIf(func() bool { asked = true; return reaps })
		if asked != hands {
			t.Errorf("reaps %v: asked %v, want %v (hands %v)", reaps, asked, hands, hands)
		}
		if want := hands && reaps; allowed != want {
			t.Errorf("reaps %v: allowed %v, want %v", reaps, allowed, want)
		}
	}
}
