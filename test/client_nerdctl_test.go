package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// nerdctlNS is the containerd namespace the nerdctl suite runs in.
const nerdctlNS = "dnet-nerdctl"

// TestClientNerdctl: `nerdctl run -p` (v2.2, built by `make
// cluster-tools`) on containerd 2, rootful, with the conflists nerdctl
// writes itself: our bridge, host-local and portmap, chained with the
// reference's firewall and tuning. Its default network, then a network of
// its own removed with `nerdctl network rm`, then a compose project taken
// down with `nerdctl compose down`: each time nothing may name what was
// removed, neither a container nor a network, bridge or subnet.
func TestClientNerdctl(t *testing.T) {
	h := newClientHost(t, "nerdctl", "ctr", "runc")
	tools := filepath.Dir(testenv.Built(t, "CLUSTER_TOOLS", ".tools/cluster", "containerd"))
	nerdctlBin := testenv.Built(t, "CLUSTER_TOOLS", ".tools/cluster", "nerdctl")
	h.addReferencePlugin("firewall")
	h.addReferencePlugin("tuning")
	// A host whose iptables filter table exists already (any host that
	// ran Docker or a firewall): where the reference firewall creates it
	// after our first ADD, our accepts are not there until a restore
	// (dnetctl restore, the node agent), and dnetctl check says so.
	h.host.MustRun("iptables", "-P", "FORWARD", "ACCEPT")
	c := h.startContainerdBuild(nerdctlNS, containerdBuild{dir: tools, config: containerd2Config})
	h.env = append(h.env, "PATH="+tools+":"+os.Getenv("PATH"))
	nerdctl := func(args ...string) []string {
		return append([]string{nerdctlBin, "--address", c.sock, "--namespace", nerdctlNS,
			"--data-root", filepath.Join(h.dir, "nerdctl"), "--cni-path", "/opt/cni/bin", "--cni-netconfpath", "/etc/cni/net.d"}, args...)
	}
	t.Cleanup(func() { _, _ = h.run(nerdctl("rm", "-f", "web", "web2")...) })
	ipOf := func(name string) string {
		out := h.mustRun(nerdctl("inspect", name)...)
		var got []struct {
			NetworkSettings struct {
				Networks map[string]struct{ IPAddress string }
			}
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 1 {
			t.Fatalf("nerdctl inspect %s: %v", name, err)
		}
		for _, n := range got[0].NetworkSettings.Networks {
			return n.IPAddress
		}
		t.Fatalf("nerdctl inspect %s: no network", name)
		return ""
	}

	// Its default network, "bridge" (nerdctl0).
	h.mustRun(nerdctl("run", "-d", "--name", "web", "-p", "8080:5000", "-p", "8053:5000/udp", "--entrypoint", "/hello", helloImage, "serve")...)
	ip := ipOf("web")
	h.waitServingAt(ip)
	h.reach(h.client, "tcp", hostAddr, 8080)
	h.reach(h.client, "udp", hostAddr, 8053)
	h.reach(h.host, "tcp", "127.0.0.1", 8080)
	h.check("dnetctl check while running", h.dnetctlCheck())
	_, err := h.run(nerdctl("rm", "-f", "web")...)
	h.check("nerdctl rm -f", err)
	h.check("nothing left after nerdctl rm -f", h.leftovers("nerdctl0", ip))

	// A network of its own, removed with nerdctl network rm.
	h.mustRun(nerdctl("network", "create", "--subnet", "10.4.7.0/24", "dnetrm")...)
	bridge := h.nerdctlBridge("dnetrm")
	h.mustRun(nerdctl("run", "-d", "--name", "web2", "--network", "dnetrm", "-p", "8095:5000", "--entrypoint", "/hello", helloImage, "serve")...)
	h.waitServingAt(ipOf("web2"))
	h.reach(h.client, "tcp", hostAddr, 8095)
	h.check("the network's rules name its bridge while it runs", h.rulesName(bridge))
	_, err = h.run(nerdctl("rm", "-f", "web2")...)
	h.check("nerdctl rm -f on dnetrm", err)
	_, err = h.run(nerdctl("network", "rm", "dnetrm")...)
	h.check("nerdctl network rm", err)
	h.check("nothing names the removed network", h.namesNothing(bridge, "10.4.7.", "8095"))

	// A compose project: its default network goes with compose down.
	project := filepath.Join(h.dir, "compose")
	writeFile(t, filepath.Join(project, "compose.yaml"), fmt.Sprintf(`services:
  web:
    image: %s
    entrypoint: ["/hello", "serve"]
    ports: ["8096:5000"]
networks:
  default:
    ipam:
      config:
        - subnet: 10.4.8.0/24
`, helloImage))
	compose := func(args ...string) []string {
		return nerdctl(append([]string{"compose", "--project-directory", project, "-p", "dnetc"}, args...)...)
	}
	h.mustRun(compose("up", "-d")...)
	bridge = h.nerdctlBridge("dnetc_default")
	eventuallyServing(h, 8096)
	h.check("the project's rules name its bridge while it runs", h.rulesName(bridge))
	_, err = h.run(compose("down")...)
	h.check("nerdctl compose down", err)
	h.check("nothing names the project's network after compose down", h.namesNothing(bridge, "10.4.8.", "8096"))
	h.check("dnetctl check at the end", h.dnetctlCheck())
}

// nerdctlBridge is the bridge of nerdctl's network name, from the
// conflist nerdctl wrote for it (in a folder of its namespace's).
func (h *clientHost) nerdctlBridge(name string) string {
	h.t.Helper()
	found, _ := filepath.Glob(filepath.Join(h.netD, "*", "nerdctl-"+name+".conflist"))
	top, _ := filepath.Glob(filepath.Join(h.netD, "nerdctl-"+name+".conflist"))
	if found = append(found, top...); len(found) != 1 {
		h.t.Fatalf("nerdctl's conflist for %s: found %v", name, found)
	}
	data, err := os.ReadFile(found[0])
	if err != nil {
		h.t.Fatal(err)
	}
	var conf struct {
		Plugins []struct {
			Type   string `json:"type"`
			Bridge string `json:"bridge"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(data, &conf); err != nil {
		h.t.Fatal(err)
	}
	for _, p := range conf.Plugins {
		if p.Type == "bridge" && p.Bridge != "" {
			return p.Bridge
		}
	}
	h.t.Fatalf("nerdctl's conflist for %s names no bridge:\n%s", name, data)
	return ""
}

// eventuallyServing waits until the host port answers from the client.
func eventuallyServing(h *clientHost, port int) {
	h.t.Helper()
	what := fmt.Sprintf("tcp %s:%d from the client", hostAddr, port)
	testenv.Eventually(h.t, 20*time.Second, what, func() error {
		_, err := h.request(h.client, "tcp", hostAddr, port)
		return err
	})
	h.check(what, nil)
}
