package oneproc

import (
	"runtime"
	"syscall"
	"testing"
)

func TestProcs(t *testing.T) {
	for _, c := range []struct {
		env  string
		set  bool
		want int
	}{
		{"", false, 1},
		{"", true, 1}, // GOMAXPROCS= (empty) is unset for the runtime too
		{"4", true, 0},
		{"1", true, 0},
	} {
		if got := procs(c.env, c.set); got != c.want {
			t.Errorf("procs(%q, %v) = %d, want %d", c.env, c.set, got, c.want)
		}
	}
}

// The test binary imports the package: its init ran.
func TestInitRan(t *testing.T) {
	if _, set := lookup(); set {
		t.Skip("GOMAXPROCS is set in this test's environment")
	}
	if n := runtime.GOMAXPROCS(0); n != 1 {
		t.Errorf("GOMAXPROCS after init = %d, want 1", n)
	}
}

func lookup() (string, bool) { return syscall.Getenv("GOMAXPROCS") }
