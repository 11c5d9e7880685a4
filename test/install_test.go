package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockernet/cni-plugins/plugins/pkg/install"
)

// TestInstallBesideDocker: dnetctl install (what `make install` runs) on a
// host where Docker owns docker0 and 172.17.0.0/16 installs a conflist on
// another bridge and subnet, says so, and the network it installed works
// without touching Docker's bridge. A rerun changes nothing.
func TestInstallBesideDocker(t *testing.T) {
	w := newWorld(t, "nftables")
	w.host.MustRun("ip", "link", "add", "docker0", "type", "bridge")
	w.host.MustRun("ip", "addr", "add", "172.17.0.1/16", "dev", "docker0")
	w.host.MustRun("ip", "link", "set", "docker0", "up")
	binDir, confDir := filepath.Join(w.dir, "opt-cni-bin"), filepath.Join(w.dir, "etc-cni-net.d")
	runInstall := func() string {
		return w.host.MustRun(filepath.Join(w.bin, "dnetctl"), "install", "-bin-src", w.bin,
			"-bin-dir", binDir, "-conf-dir", confDir, "-conflist", "../conf/10-docker0.conflist")
	}
	out := runInstall()
	t.Logf("dnetctl install:\n%s", out)
	for _, want := range []string{"a link named docker0 is already on this host", "172.17.0.0/16 is already in use", "uses bridge dnet0 and 172.18.0.0/16 instead", "wrote "} {
		if !strings.Contains(out, want) {
			t.Errorf("install said %q, want %q in it", out, want)
		}
	}
	for _, p := range install.PluginBinaries {
		if _, err := os.Stat(filepath.Join(binDir, p)); err != nil {
			t.Errorf("plugin %s not installed: %v", p, err)
		}
	}
	installed, err := os.ReadFile(filepath.Join(confDir, "10-docker0.conflist"))
	if err != nil {
		t.Fatal(err)
	}

	c := w.newContainer("c1")
	ip := w.addTo(w.networkFrom(installed, network{}), c, both(8400, ""))
	if !strings.HasPrefix(ip, "172.18.") {
		t.Errorf("container address %s, want one in 172.18.0.0/16", ip)
	}
	w.mustReach(w.client, "tcp", hostAddr, 8400)
	if ports := w.host.MustRun("ip", "-o", "link", "show", "master", "docker0"); strings.TrimSpace(ports) != "" {
		t.Errorf("Docker's docker0 gained ports: %s", ports)
	}
	if addrs := w.host.MustRun("ip", "-o", "addr", "show", "dev", "docker0"); strings.Count(addrs, "inet ") != 1 {
		t.Errorf("Docker's docker0 addresses changed: %s", addrs)
	}

	if again := runInstall(); !strings.Contains(again, "nothing changed") || !strings.Contains(again, "bridge dnet0, 172.18.0.0/16") {
		t.Errorf("rerun said %q, want nothing changed on dnet0, 172.18.0.0/16", again)
	}
}
