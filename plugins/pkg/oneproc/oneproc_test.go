package oneproc

import (
	"runtime"
	"syscall"
	"testing"
)

func TestProcs(t *testing.T) {
	for _, c := range []struct {
		env  string
		want int
	}{
		{"", 1}, // unset, or GOMAXPROCS= (empty): unset for the runtime too
		{"4", 0},
		{"1", 0},
	} {
		if got := procs(c.env); got != c.want {
			t.Errorf("procs(%q) = %d, want %d", c.env, got, c.want)
		}
	}
}

// The test binary imports the package: its init ran.
func TestInitRan(t *testing.T) {
	if env, _ := syscall.Getenv("GOMAXPROCS"); env != "" {
		t.Skip("GOMAXPROCS is set in this test's environment")
	}
	if n := runtime.GOMAXPROCS(0); n != 1 {
		t.Errorf("GOMAXPROCS after init = %d, want 1", n)
	}
}
