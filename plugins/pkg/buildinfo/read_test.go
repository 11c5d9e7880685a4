package buildinfo

import (
	stdbuildinfo "debug/buildinfo"
	"os"
	"path/filepath"
	"testing"
)

// ReadFile agrees with the standard library's reader on this test binary.
func TestReadFileAgreesWithDebugBuildinfo(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	want, err := stdbuildinfo.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Errorf("ReadFile:\n%s\ndebug/buildinfo:\n%s", got, want)
	}
}

func TestReadFileRefusesOthers(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"script": "#!/bin/sh\nexit 0\n",
		"empty":  "",
		"elf32":  "\x7fELF\x01\x01" + string(make([]byte, 80)),
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		if bi, err := ReadFile(p); err == nil {
			t.Errorf("%s: read %v, want an error", name, bi)
		}
	}
	if _, err := ReadFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file: want an error")
	}
}
