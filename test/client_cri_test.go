package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// podCIDR is this test node's pod CIDR, as a Node object's spec.podCIDRs
// gives it to the installer.
const podCIDR = "10.244.1.0/24"

// TestClientCRI: pods with hostPorts, as kubelet asks containerd 1.6's CRI
// for them, with crictl in kubelet's place, on conf/kubernetes's conflist
// with the node's pod CIDR. containerd needs a loopback plugin beside ours
// (ours), sends the mappings with capitalised keys and an empty HostIP,
// and deletes twice: at stopp with the netns, at rmp without netns or
// prevResult.
func TestClientCRI(t *testing.T) {
	h := newClientHost(t, "containerd CRI", "containerd", "ctr", "runc")
	writeFile(t, filepath.Join(h.netD, "10-dockernet.conflist"), string(renderKubernetes(t, podCIDR)))
	criSuite(h, h.startContainerd("k8s.io"))
}

// criSuite is kubelet's part, through crictl, against containerd c; it
// returns crictl, bound to c, for more.
func criSuite(h *clientHost, c *containerd) func(...string) (string, error) {
	t := h.t
	cri := h.crictl(c)

	// What kubelet sends for a pod with hostPorts: TCP and UDP, on every
	// address and on one.
	web := podSandbox{Name: "web", Ports: []criPort{
		{Protocol: criTCP, ContainerPort: helloPort, HostPort: 8080},
		{Protocol: criUDP, ContainerPort: helloPort, HostPort: 8053},
		{Protocol: criTCP, ContainerPort: helloPort, HostPort: 8081, HostIP: "127.0.0.1"},
		{Protocol: criTCP, ContainerPort: helloPort, HostPort: 8082, HostIP: hostAddr2},
	}}
	webConf := web.write(t, c.dir)
	webID, err := cri("runp", webConf)
	if !h.check("crictl runp with port_mappings", err) {
		t.FailNow()
	}
	ctrConf := filepath.Join(c.dir, "hello-container.json")
	writeJSON(t, ctrConf, map[string]any{
		"metadata": map[string]any{"name": "hello"},
		"image":    map[string]any{"image": helloImage},
		"command":  []string{"/hello", "serve"},
		"log_path": "hello.log",
	})
	ctrID, err := cri("create", webID, ctrConf, webConf)
	if err == nil {
		_, err = cri("start", ctrID)
	}
	h.check("crictl create and start the hello container", err)
	ip := h.podIP(cri, webID)
	_, cidr, _ := net.ParseCIDR(podCIDR)
	if !h.check("pod address "+ip+" in the node's pod CIDR "+podCIDR, errUnless(cidr.Contains(net.ParseIP(ip)), "not in it")) {
		t.FailNow()
	}
	h.waitServingAt(ip)
	h.reach(h.client, "tcp", hostAddr, 8080)
	h.reach(h.client, "udp", hostAddr, 8053)
	h.reach(h.client, "tcp", hostAddr2, 8082)
	h.reach(h.host, "tcp", hostAddr, 8080)
	h.reach(h.host, "tcp", "127.0.0.1", 8081)
	_, err = h.request(h.client, "tcp", hostAddr, 8082)
	h.check("tcp 192.0.2.1:8082 from the client is refused: published on 192.0.2.3 only", errUnless(err != nil, "it answered"))

	// A second pod, nothing published: kubelet's ordinary pod, with a
	// container the probes run in (crictl exec, through CRI's streaming
	// server).
	peerConf := podSandbox{Name: "peer"}.write(t, c.dir)
	peerID, err := cri("runp", peerConf)
	h.check("crictl runp without port_mappings", err)
	probeConf := filepath.Join(c.dir, "probe-container.json")
	writeJSON(t, probeConf, map[string]any{
		"metadata": map[string]any{"name": "probe"},
		"image":    map[string]any{"image": helloImage},
		"command":  []string{"/hello", "pause"},
		"log_path": "probe.log",
	})
	probeID, err := cri("create", peerID, probeConf, peerConf)
	if err == nil {
		_, err = cri("start", probeID)
	}
	h.check("crictl create and start a container in the second pod", err)
	for _, target := range []string{"http://" + hostAddr + ":8080/", "http://" + ip + ":5000/"} {
		out, err := cri("exec", probeID, "/hello", "get", target)
		if err == nil && !strings.HasPrefix(out, "Hello\n") {
			err = fmt.Errorf("unexpected answer %q", out)
		}
		h.check("tcp "+target+" from a container of the second pod (crictl exec)", err)
	}
	h.check("dnetctl check while running", h.dnetctlCheck())
	// conf/kubernetes sets the mode itself; under flannel it is chosen.
	h.check("dnetctl list: the pod has gatewayMode nat-unprotected, from the conflist", h.listsMode("nat-unprotected: set in the network config"))

	// kubelet's teardown: stop (DEL with the netns), then remove (DEL
	// again, without netns and prevResult).
	_, err = cri("stopp", webID)
	h.check("crictl stopp", err)
	_, err = h.request(h.client, "tcp", hostAddr, 8080)
	h.check("the host port is closed after stopp", errUnless(err != nil, "it still answers"))
	_, err = cri("rmp", webID)
	h.check("crictl rmp", err)
	_, err = cri("stopp", peerID)
	if err == nil {
		_, err = cri("rmp", peerID)
	}
	h.check("crictl stopp and rmp the second pod", err)
	h.check("nothing left after stopp and rmp", h.leftovers("cni0", ip))
	// The network's own rules (accepts, the subnet's drops) went with
	// its last pod, as they do when a kubelet's pods are all removed.
	h.check("no rule names the network after its last pod", h.namesNothing("cni0", "10.244.1.0/24"))
	h.check("dnetctl check after rmp", h.dnetctlCheck())
	return cri
}

// crictl is crictl bound to containerd c, as kubelet's stand-in; every
// pod left is stopped and removed at cleanup.
func (h *clientHost) crictl(c *containerd) func(...string) (string, error) {
	crictl := testenv.Built(h.t, "CRICTL", ".tools/bin/crictl", "")
	cfg := filepath.Join(c.dir, "crictl.yaml")
	writeFile(h.t, cfg, fmt.Sprintf("runtime-endpoint: unix://%[1]s\nimage-endpoint: unix://%[1]s\ntimeout: 30\n", c.sock))
	cri := func(args ...string) (string, error) {
		out, err := h.run(append([]string{crictl, "--config", cfg}, args...)...)
		return strings.TrimSpace(out), err
	}
	h.t.Cleanup(func() {
		pods, _ := cri("pods", "-q")
		for _, p := range strings.Fields(pods) {
			_, _ = cri("stopp", p)
			_, _ = cri("rmp", p)
		}
	})
	return cri
}

// podSandbox is a pod sandbox config as crictl takes it (the CRI
// PodSandboxConfig in protobuf's JSON).
type podSandbox struct {
	Name  string
	Ports []criPort
}

// The CRI's Protocol enum, which crictl reads as a number.
const (
	criTCP = 0
	criUDP = 1
)

type criPort struct {
	Protocol      int    `json:"protocol"`
	ContainerPort int    `json:"container_port"`
	HostPort      int    `json:"host_port"`
	HostIP        string `json:"host_ip,omitempty"`
}

func (p podSandbox) write(t *testing.T, dir string) string {
	path := filepath.Join(dir, "pod-"+p.Name+".json")
	writeJSON(t, path, map[string]any{
		"metadata":      map[string]any{"name": p.Name, "namespace": "default", "uid": "uid-" + p.Name, "attempt": 0},
		"hostname":      p.Name,
		"log_directory": filepath.Join(dir, "logs", p.Name),
		"port_mappings": p.Ports,
		"linux":         map[string]any{},
	})
	return path
}

// podStatus is what crictl inspectp says of a sandbox, in part.
type podStatus struct {
	Status struct {
		Network struct {
			IP string `json:"ip"`
		} `json:"network"`
	} `json:"status"`
}

func (h *clientHost) inspectPod(cri func(...string) (string, error), id string) podStatus {
	h.t.Helper()
	out, err := cri("inspectp", "-o", "json", id)
	if err != nil {
		h.t.Fatal(err)
	}
	var s podStatus
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		h.t.Fatalf("crictl inspectp: %v", err)
	}
	return s
}

func (h *clientHost) podIP(cri func(...string) (string, error), id string) string {
	return h.inspectPod(cri, id).Status.Network.IP
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(data))
}

func errUnless(ok bool, msg string) error {
	if ok {
		return nil
	}
	return fmt.Errorf("%s", msg)
}
