package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Missing stops a test whose prerequisite (root, a tool) is missing: it
// fails under CI (CI=true), where a skip would hide that part of the
// suite did not run, and skips elsewhere. why says how to get it.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	why := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI must have it)", why)
	}
	t.Skip(why)
}

// sbin are where system tools live that a non-login root shell's PATH
// may lack.
var sbin = []string{"/usr/sbin", "/sbin", "/usr/local/sbin"}

// lookTool is name's path: from PATH, else from sbin, else name itself
// (the exec then reports it missing).
func lookTool(name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range sbin {
		if p := filepath.Join(d, name); isExecutable(p) {
			return p
		}
	}
	return name
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// Tool is the path of a system tool (ip, nft, podman, …), or Missing
// when it is not installed.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p := lookTool(name)
	if !isExecutable(p) {
		Missing(t, "%s is not installed (scripts/install-deps.sh installs it)", name)
	}
	return p
}

// Built is the path of a tool the Makefile builds or installs: file in
// the directory $env names (or, when file is "", the file $env names),
// by default under def in the checkout (.tools/...); Missing when absent.
func Built(t testing.TB, env, def, file string) string {
	t.Helper()
	base := os.Getenv(env)
	if base == "" {
		base = filepath.Join(repoRoot(), def)
	}
	p, _ := filepath.Abs(filepath.Join(base, file))
	if !isExecutable(p) {
		Missing(t, "%s is not built (%s; `make tools cluster-tools` builds every tool the tests use)", p, env)
	}
	return p
}

// repoRoot is the checkout's top directory.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}
