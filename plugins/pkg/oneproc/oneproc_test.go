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

// Beside gives a second P where there is a second CPU, and leaves an
// environment's GOMAXPROCS alone.
func TestBeside(t *testing.T) {
	if env, _ := syscall.Getenv("GOMAXPROCS"); env != "" {
		t.Skip("GOMAXPROCS is set in this test's environment")
	}
	prev := runtime.GOMAXPROCS(1)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	Beside()
	want := 2
	if runtime.NumCPU() == 1 {
		want = 1
	}
	if n := runtime.GOMAXPROCS(0); n != want {
		t.Errorf("GOMAXPROCS after Beside = %d, want %d", n, want)
	}
	t.Setenv("GOMAXPROCS", "1")
	runtime.GOMAXPROCS(1)
	Beside()
	if n := runtime.GOMAXPROCS(0); n != 1 {
		t.Errorf("GOMAXPROCS=1 in the environment: Beside made it %d", n)
	}
}
