package bridgeplugin

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func TestSameBuild(t *testing.T) {
	base := func() *debug.BuildInfo {
		return &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/dockernet/cni-plugins", Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "-trimpath", Value: "true"}, {Key: "CGO_ENABLED", Value: "0"}},
			Deps:     []*debug.Module{{Path: "github.com/containernetworking/cni", Version: "v1.3.1", Sum: "h1:a"}}}
	}
	for _, tc := range []struct {
		name   string
		change func(b *debug.BuildInfo)
		same   bool
	}{
		{"identical", func(*debug.BuildInfo) {}, true},
		{"a module only one links", func(b *debug.BuildInfo) {
			b.Deps = append(b.Deps, &debug.Module{Path: "github.com/vishvananda/netlink", Version: "v1.3.1", Replace: &debug.Module{Path: "x"}})
		}, true},
		{"another toolchain", func(b *debug.BuildInfo) { b.GoVersion = "go1.25.0" }, false},
		{"another release", func(b *debug.BuildInfo) { b.Main.Version = "v0.9.0" }, false},
		{"other flags", func(b *debug.BuildInfo) { b.Settings[1].Value = "1" }, false},
		{"a shared module at another version", func(b *debug.BuildInfo) { b.Deps[0].Version = "v1.2.0" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := base()
			tc.change(b)
			if got := sameBuild(base(), b); got != tc.same {
				t.Errorf("sameBuild = %v, want %v", got, tc.same)
			}
		})
	}
}

// Only host-local, found beside this binary, runs in process; the
// escape hatch and a host-local elsewhere start the plugin.
func TestIPAMInProcessOnlyBeside(t *testing.T) {
	elsewhere := t.TempDir()
	if err := os.WriteFile(filepath.Join(elsewhere, "host-local"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CNI_PATH", elsewhere)
	for _, typ := range []string{"host-local", "dhcp", "static"} {
		if decideInProcess(typ) {
			t.Errorf("%s in %s, not beside the binary: in process", typ, elsewhere)
		}
	}
	t.Setenv("DNET_IPAM_EXEC", "1")
	if decideInProcess("host-local") {
		t.Error("DNET_IPAM_EXEC=1: in process")
	}
}

// A process decides once per type: what changes after (here the escape
// hatch; on a node, the binary replaced by an upgrade mid-ADD) does not
// make the undo of an ADD release its addresses another way.
func TestIPAMInProcessDecidedOnce(t *testing.T) {
	t.Setenv("DNET_IPAM_EXEC", "1")
	const typ = "host-local-once-test"
	first := ipamInProcess(typ)
	inProcess.Store(typ, !first) // as if the first answer had been the other
	t.Setenv("DNET_IPAM_EXEC", "")
	if ipamInProcess(typ) == first {
		t.Error("asked again, the process decided again")
	}
	inProcess.Delete(typ)
}
