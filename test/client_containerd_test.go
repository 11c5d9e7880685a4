package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// containerdConfig is containerd 1.6 with everything under the test's dir
// (its /opt/containerd too),
// its CRI plugin reading the private /etc/cni/net.d and /opt/cni/bin, and
// the hello image as the pod sandbox image (there is no registry to pull
// registry.k8s.io/pause from). restrict_oom_score_adj: CRI gives sandboxes
// an OOM score below the caller's, which a process without
// CAP_SYS_RESOURCE may not set.
const containerdConfig = `version = 2
root = "%[1]s/root"
state = "%[1]s/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "%[1]s/containerd.sock"

[ttrpc]
  address = "%[1]s/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "%[1]s/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "%[2]s"
  stream_server_port = "0"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
    max_conf_num = 1
`

// containerd2Config is containerd 2's (config version 3) equivalent of
// containerdConfig: the CRI plugin is split into images and runtime, the
// pinned sandbox image replaces sandbox_image, and the CNI plugin
// directories are a list.
const containerd2Config = `version = 3
root = "%[1]s/root"
state = "%[1]s/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.erofs"]

[grpc]
  address = "%[1]s/containerd.sock"

[ttrpc]
  address = "%[1]s/containerd.sock.ttrpc"

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_port = "0"

[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = "%[2]s"

[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/opt/cni/bin"]
    conf_dir = "/etc/cni/net.d"
    max_conf_num = 1
`

// containerdBuild is which containerd a suite runs: Debian's 1.6 from
// PATH, or containerd 2 from `make cluster-tools` with its own shim.
type containerdBuild struct {
	dir    string // holds containerd and its shim; "" for PATH
	config string // containerdConfig or containerd2Config
}

var containerd16 = containerdBuild{config: containerdConfig}

// containerd is a daemon of the test's own, in its client host.
type containerd struct {
	h    *clientHost
	dir  string
	sock string
}

// startContainerd starts containerd in the client host, with the hello
// image imported into namespace ns, and stops it (and the shims it
// started) at cleanup.
func (h *clientHost) startContainerd(ns string) *containerd {
	return h.startContainerdBuild(ns, containerd16)
}

// startContainerdBuild is startContainerd for a given containerd.
func (h *clientHost) startContainerdBuild(ns string, build containerdBuild) *containerd {
	h.t.Helper()
	c := &containerd{h: h, dir: filepath.Join(h.dir, "containerd")}
	h.ownCgroups(ns)
	c.sock = filepath.Join(c.dir, "containerd.sock")
	writeFile(h.t, filepath.Join(c.dir, "config.toml"), fmt.Sprintf(build.config, c.dir, helloImage))
	log, err := os.Create(filepath.Join(c.dir, "containerd.log"))
	if err != nil {
		h.t.Fatal(err)
	}
	bin := "containerd"
	if build.dir != "" {
		// Its own shim first in PATH: containerd finds the shim there.
		bin = filepath.Join(build.dir, "containerd")
	}
	cmd := h.command(bin, "--config", filepath.Join(c.dir, "config.toml"))
	if build.dir != "" {
		cmd.Env = append(cmd.Env, "PATH="+build.dir+":"+os.Getenv("PATH"))
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		h.t.Fatalf("start containerd: %v", err)
	}
	h.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = log.Close()
		killProcessesMentioning(c.dir)
		if h.t.Failed() {
			data, _ := os.ReadFile(log.Name())
			lines := strings.Split(string(data), "\n")
			if len(lines) > 40 {
				lines = lines[len(lines)-40:]
			}
			h.t.Logf("containerd's log, last lines:\n%s", strings.Join(lines, "\n"))
		}
	})
	testenv.Eventually(h.t, 20*time.Second, "containerd answering on "+c.sock, func() error {
		return exec.Command("ctr", "-a", c.sock, "version").Run()
	})
	archive := filepath.Join(c.dir, "hello.tar")
	img := ociImage{name: helloImage, files: map[string]string{"/hello": filepath.Join(h.bin, "hello")}, entrypoint: []string{"/hello"}, cmd: []string{"pause"}}
	if err := img.writeArchive(archive); err != nil {
		h.t.Fatal(err)
	}
	h.mustRun("ctr", "-a", c.sock, "-n", ns, "images", "import", archive)
	return c
}
