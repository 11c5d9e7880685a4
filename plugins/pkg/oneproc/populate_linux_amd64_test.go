package oneproc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A binary linked at Entry has all of its code, read-only data and data
// mapped by main, though most of its code never runs; the control, the
// same program linked without the stub, has not. On a kernel that
// refuses the advice (before 5.14) there is nothing to check.
func TestEntryPopulates(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command to build testdata/populatecheck")
	}
	dir := t.TempDir()
	run := func(name string, ldflags ...string) (code, rodata, data [2]int, populated string) {
		bin := filepath.Join(dir, name)
		args := append([]string{"build"}, ldflags...)
		build := exec.Command("go", append(args, "-o", bin, "./testdata/populatecheck")...)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building populatecheck: %v\n%s", err, out)
		}
		out, err := exec.Command(bin).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "code=%d/%d rodata=%d/%d data=%d/%d populated=%s",
			&code[0], &code[1], &rodata[0], &rodata[1], &data[0], &data[1], &populated); err != nil {
			t.Fatalf("%s printed %q: %v", name, out, err)
		}
		return code, rodata, data, populated
	}
	code, rodata, data, populated := run("stub", "-ldflags", "-E "+Entry)
	if populated != "<nil>" {
		t.Skipf("the kernel refused the stub's advice: %s", populated)
	}
	for _, m := range []struct {
		name string
		kib  [2]int
	}{{"code", code}, {"read-only data", rodata}, {"data written", data}} {
		if m.kib[0] != m.kib[1] {
			t.Errorf("with the stub, %s: %d KiB of %d mapped by main, want all", m.name, m.kib[0], m.kib[1])
		}
	}
	code, rodata, data, _ = run("control")
	if code[0] == code[1] || rodata[0] == rodata[1] || data[0] == data[1] {
		t.Errorf("control: without the stub, code %v, read-only data %v, data %v (KiB mapped/size) are already all mapped: the check proves nothing", code, rodata, data)
	}
}
