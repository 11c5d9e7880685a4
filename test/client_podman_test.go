package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// helloImage is the workload image every client suite runs: the hello
// binary alone (no registry is reachable, so nothing is pulled). Podman
// builds it; containerd imports it from an OCI archive the test writes.
const helloImage = "localhost/dnet-hello:test"

// podmanContainersConf is Podman 4 on its CNI backend with its default
// plugin and conflist directories, which the private mount namespace maps
// to the test's own. cgroupfs and file events: there is no systemd here.
// The limits are lowered explicitly because Podman otherwise raises
// RLIMIT_NPROC and RLIMIT_NOFILE, which a process without
// CAP_SYS_RESOURCE (a container running this suite) may not.
const podmanContainersConf = `[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[network]
network_backend = "cni"
cni_plugin_dirs = ["/opt/cni/bin"]
network_config_dir = "/etc/cni/net.d"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "%[1]s/events.log"
runtime = "runc"
tmp_dir = "%[1]s/tmp"
static_dir = "%[1]s/root/libpod"
volume_path = "%[1]s/root/volumes"
`

const podmanStorageConf = `[storage]
driver = "overlay"
graphroot = "%[1]s/root"
runroot = "%[1]s/run"
`

// TestClientPodman: `podman run -p` on Podman's own default network, whose
// conflist Podman generates (bridge, portmap, firewall, tuning) and which
// runs our bridge, host-local and portmap with the reference firewall and
// tuning; then on our conf/10-docker0.conflist dropped into net.d.
func TestClientPodman(t *testing.T) {
	h := newClientHost(t, "podman", "podman", "runc", "conmon")
	h.addReferencePlugin("firewall")
	h.addReferencePlugin("tuning")
	dir := h.podmanSetup()

	ctx := filepath.Join(dir, "image")
	copyFile(t, filepath.Join(h.bin, "hello"), filepath.Join(ctx, "hello"), 0o755)
	writeFile(t, filepath.Join(ctx, "Containerfile"), "FROM scratch\nCOPY hello /hello\nENTRYPOINT [\"/hello\"]\nCMD [\"serve\"]\n")
	h.mustRun("podman", "build", "-q", "-t", helloImage, ctx)

	// Podman's default network: its conflist, our plugins.
	h.mustRun("podman", "run", "-d", "--name", "web", "-p", "8080:5000", "-p", "8053:5000/udp", helloImage)
	ip := strings.TrimSpace(h.mustRun("podman", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"))
	h.waitServingAt(ip)
	h.reach(h.client, "tcp", hostAddr, 8080)
	h.reach(h.client, "udp", hostAddr, 8053)
	h.reach(h.host, "tcp", hostAddr, 8080)
	h.reach(h.host, "tcp", "127.0.0.1", 8080)
	h.reach(h.host, "udp", "127.0.0.1", 8053)
	// A second container, on the same network with nothing published:
	// Podman then chains portmap with no runtimeConfig at all.
	h.podmanGet("tcp :8080 from a second container, via the host address", "http://"+hostAddr+":8080/")
	h.podmanGet("tcp to the first container's address from a second container", "http://"+ip+":5000/")
	h.check("dnetctl check while running", h.dnetctlCheck())
	h.check("dnetctl list: Podman's container keeps Docker's protection", h.listsMode("nat: Docker's default"))
	_, err := h.run("podman", "rm", "-f", "-t", "0", "web")
	h.check("podman rm -f", err)
	h.check("nothing left after podman rm -f", h.leftovers("cni-podman0", ip))
	h.check("dnetctl check after rm", h.dnetctlCheck())

	// Our own conflist, as `make install` puts it into /etc/cni/net.d.
	copyFile(t, "../conf/10-docker0.conflist", filepath.Join(h.netD, "10-docker0.conflist"), 0o644)
	h.mustRun("podman", "run", "-d", "--name", "web2", "--network", "docker0", "-p", "8090:5000", "-p", "8091:5000/udp", helloImage)
	ip2 := strings.TrimSpace(h.mustRun("podman", "inspect", "-f", `{{(index .NetworkSettings.Networks "docker0").IPAddress}}`, "web2"))
	h.waitServingAt(ip2)
	h.reach(h.client, "tcp", hostAddr, 8090)
	h.reach(h.client, "udp", hostAddr, 8091)
	h.reach(h.host, "tcp", "127.0.0.1", 8090)
	_, err = h.run("podman", "rm", "-f", "-t", "0", "web2")
	h.check("podman rm -f on docker0", err)
	h.check("nothing left on docker0", h.leftovers("docker0", ip2))

	// A network of its own, removed with podman network rm: nothing names
	// its bridge or subnet afterwards.
	h.mustRun("podman", "network", "create", "--subnet", "10.89.7.0/24", "dnetrm")
	bridge := strings.TrimSpace(h.mustRun("podman", "network", "inspect", "-f", "{{.NetworkInterface}}", "dnetrm"))
	h.mustRun("podman", "run", "-d", "--name", "web3", "--network", "dnetrm", "-p", "8095:5000", helloImage)
	ip3 := strings.TrimSpace(h.mustRun("podman", "inspect", "-f", `{{(index .NetworkSettings.Networks "dnetrm").IPAddress}}`, "web3"))
	h.waitServingAt(ip3)
	h.reach(h.client, "tcp", hostAddr, 8095)
	h.check("the network's rules name its bridge while it runs", h.rulesName(bridge))
	_, err = h.run("podman", "rm", "-f", "-t", "0", "web3")
	h.check("podman rm -f on dnetrm", err)
	_, err = h.run("podman", "network", "rm", "dnetrm")
	h.check("podman network rm", err)
	h.check("nothing names the removed network", h.namesNothing(bridge, "10.89.7.", "8095"))
}

// podmanSetup gives Podman its configuration and storage in the test's
// dir, removes every container at cleanup, and returns that dir.
func (h *clientHost) podmanSetup() string {
	t := h.t
	dir := filepath.Join(h.dir, "podman")
	h.ownCgroups("libpod_parent")
	writeFile(t, filepath.Join(dir, "containers.conf"), fmt.Sprintf(podmanContainersConf, dir))
	writeFile(t, filepath.Join(dir, "storage.conf"), fmt.Sprintf(podmanStorageConf, dir))
	writeFile(t, filepath.Join(dir, "registries.conf"), "")
	h.env = append(h.env, "CONTAINERS_CONF="+filepath.Join(dir, "containers.conf"),
		"CONTAINERS_STORAGE_CONF="+filepath.Join(dir, "storage.conf"),
		"CONTAINERS_REGISTRIES_CONF="+filepath.Join(dir, "registries.conf"))
	t.Cleanup(func() { _, _ = h.run("podman", "rm", "-a", "-f", "-t", "0") })
	return dir
}

// podmanGet runs the hello client in a throwaway container.
func (h *clientHost) podmanGet(what, url string) {
	h.t.Helper()
	out, err := h.run("podman", "run", "--rm", helloImage, "get", url)
	if err == nil && !strings.HasPrefix(out, "Hello\n") {
		err = fmt.Errorf("unexpected answer %q", out)
	}
	h.check(what, err)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, mode); err != nil {
		t.Fatal(err)
	}
}
