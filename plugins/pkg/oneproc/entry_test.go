package oneproc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A binary linked with -E Entry starts with one P and, by main, has given
// every thread the affinity it was started with; Beside still finds the
// CPUs. Run under the test's own affinity and, where taskset is, under
// one CPU.
func TestEntryStub(t *testing.T) {
	if Entry == "" {
		t.Skip("no entry stub on this platform")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command to build testdata/entrycheck")
	}
	bin := filepath.Join(t.TempDir(), "entrycheck")
	build := exec.Command("go", "build", "-ldflags", "-E "+Entry, "-o", bin, "./testdata/entrycheck")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building entrycheck: %v\n%s", err, out)
	}
	var own unix.CPUSet
	if err := unix.SchedGetaffinity(0, &own); err != nil {
		t.Fatal(err)
	}
	beside := 1
	if own.Count() > 1 {
		beside = 2
	}
	type run struct {
		name string
		argv []string
		want string
	}
	cases := []run{
		{"own affinity", []string{bin}, fmt.Sprintf("procs=1 masks=%s beside=%d", cpuList(&own), beside)},
	}
	if taskset, err := exec.LookPath("taskset"); err == nil {
		first := 0
		for !own.IsSet(first) {
			first++
		}
		cases = append(cases, run{"one CPU", []string{taskset, "-c", fmt.Sprint(first), bin}, fmt.Sprintf("procs=1 masks=%d beside=1", first)})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(c.argv[0], c.argv[1:]...)
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "GOMAXPROCS=") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %v\n%s", c.argv, err, out)
			}
			if got := strings.TrimSpace(string(out)); got != c.want {
				t.Errorf("%v printed %q, want %q", c.argv, got, c.want)
			}
		})
	}
}

func cpuList(set *unix.CPUSet) string {
	var cpus []string
	for c := 0; c < 1024; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, fmt.Sprint(c))
		}
	}
	return strings.Join(cpus, ",")
}

// The Makefile links the plugins at Entry: it spells the symbol itself,
// and a rename here would otherwise leave the plugins at the runtime's
// entry without a word.
func TestMakefileLinksEntry(t *testing.T) {
	if Entry == "" {
		t.Skip("no entry stub on this platform")
	}
	mk, err := os.ReadFile("../../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mk), "-E "+Entry+")") {
		t.Errorf("the Makefile does not link the plugins with -E %s", Entry)
	}
}
