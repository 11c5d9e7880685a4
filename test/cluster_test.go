package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// The cluster tests: nodes as network namespaces on one underlay, each
// running a real flanneld (etcd as its store) and kube-flannel's CNI
// stack — the flannel plugin delegating to bridge and host-local, portmap
// chained — with our plugins, and with the reference plugins as the
// control. Pods are driven through libcni with the CNI_ARGS a CRI runtime
// sends for kubelet.
//
//	switch netns  ul0 198.51.100.254/24, etcd ─┬─ n1  eth0 198.51.100.1  cni0 10.244.x.1/24 ─ pods
//	                                           ├─ n2  eth0 198.51.100.2  …
//	                                           ├─ n3  eth0 198.51.100.3  …
//	                                           └─ outside 198.51.100.100 (a client on the LAN)
//
// 198.51.100.0/24 is TEST-NET-2 and 10.244.0.0/16 kube-flannel's default
// pod network; neither leaves the namespaces. Each node has a private
// mount namespace in which /var/lib/cni, /run/flannel and /etc/cni/net.d
// are its own directories, so the conflist is kube-flannel's as it ships
// and every plugin and flanneld use their default paths.
const (
	underlayPrefix = "198.51.100."
	etcdAddr       = underlayPrefix + "254"
	outsideAddr    = underlayPrefix + "100"
	podNetwork     = "10.244.0.0/16"
	podNetwork6    = "fd00:244::/56"  // a unique local range: flannel hands each node a /64 of it
	underlay6      = "2001:db8:100::" // documentation space: node i is ::i, outside ::100
	serviceVIP     = "10.96.0.10"     // a ClusterIP, DNATed by the test as kube-proxy does
	hostPort       = 8080
	sinkPort       = 5001 // hello sink, for the throughput figure
)

// kubeFlannelConflist is kube-flannel.yml's cni-conf.json as it ships,
// with the cniVersion of its time (0.3.1): the flannel plugin of
// containernetworking/plugins v0.9.1 supports up to 0.4.0, and today's
// kube-flannel.yml says 1.0.0 for flannel-io/cni-plugin, which delegates
// the same way but is not on the Go module proxy.
const kubeFlannelConflist = `{
  "name": "cbr0",
  "cniVersion": "0.3.1",
  "plugins": [
    {
      "type": "flannel",
      "delegate": {
        "hairpinMode": true,
        "isDefaultGateway": true
      }
    },
    {
      "type": "portmap",
      "capabilities": {
        "portMappings": true
      }
    }
  ]
}`

// flannelNetConf is kube-flannel.yml's net-conf.json with backend %s,
// and flannelNetConf6 the same dual-stack.
const (
	flannelNetConf  = `{"Network": "` + podNetwork + `", "EnableNFTables": false, "Backend": {"Type": "%s"}}`
	flannelNetConf6 = `{"Network": "` + podNetwork + `", "EnableIPv6": true, "IPv6Network": "` + podNetwork6 + `", "EnableNFTables": false, "Backend": {"Type": "%s"}}`
)

// clusterTools is where `make cluster-tools` puts etcd, flanneld, the
// flannel plugin and containerd 2.
func clusterTools(t *testing.T) string {
	t.Helper()
	var dir string
	for _, tool := range []string{"etcd", "flanneld", "flannel"} {
		dir = filepath.Dir(testenv.Built(t, "CLUSTER_TOOLS", ".tools/cluster", tool))
	}
	requireTools(t, "unshare", "nsenter", "iptables", "nft")
	return dir
}

// cluster is one flannel cluster of three nodes with one plugin set.
type cluster struct {
	*world         // t, prefix, the hello binary, ipv6 for dual stack; no host or client netns of its own
	set     string // "ours" or "reference"
	backend string // flannel's: vxlan or host-gw
	tools   string // clusterTools
	cniBin  string // the plugin set and the flannel plugin
	sw      *testenv.NS
	outside *testenv.NS
	nodes   []*node
	pass    int
	failed  []string
	results []string // "path: ok|FAIL", in order, for the summary
	podIPs  []string // every pod's, for the leftover checks
	conf    string   // the nodes' conflist: kubeFlannelConflist, or with our backend keys
	ipt     bool     // our iptables backend
	// iptablesResync is the variant's flanneld -iptables-resync.
	iptablesResync int
}

type node struct {
	c    *cluster
	name string
	addr string
	ns   *testenv.NS
	dir  string // the node's own directories
	*privateMounts
	cni      *libcni.CNIConfig
	list     *libcni.NetworkConfigList
	flanneld *exec.Cmd
	log      bytes.Buffer // flanneld's, across restarts
}

type pod struct {
	name, id string
	node     *node
	ns       *testenv.NS
	ip, ip6  string // ip6 in a dual-stack cluster
	ports    []mapping
}

func newCluster(t *testing.T, tools string, v clusterVariant, set string) *cluster {
	t.Helper()
	c := &cluster{world: &world{t: t, prefix: testenv.Prefix(), bin: testenv.Bin(t), dir: t.TempDir(), ipv6: v.ipv6}, set: set, backend: v.backend, tools: tools, conf: kubeFlannelConflist, iptablesResync: v.iptablesResync}
	if v.ourBackend != "" {
		c.ipt = v.ourBackend == "iptables"
		c.conf = strings.Replace(c.conf, `"isDefaultGateway": true`, `"isDefaultGateway": true, "ipMasqBackend": "`+v.ourBackend+`"`, 1)
		c.conf = strings.Replace(c.conf, `"type": "portmap",`, `"type": "portmap", "backend": "`+v.ourBackend+`",`, 1)
	}
	c.cniBin = filepath.Join(c.dir, "cni-bin")
	if err := os.MkdirAll(c.cniBin, 0o755); err != nil {
		t.Fatal(err)
	}
	// The flannel plugin is one binary for both sets; each set's own
	// plugins are copies made now, as the installer makes ours: a
	// binary's page cache state moves its starts by a millisecond or so
	// (test/bench/results/README.md, fourteenth session), and an old
	// copy against a fresh one would weigh in the comparison.
	flannel, _ := filepath.Abs(filepath.Join(tools, "flannel"))
	if _, err := os.Stat(flannel); err != nil {
		t.Fatalf("plugin %s: %v (make cluster-tools builds it)", flannel, err)
	}
	if err := os.Symlink(flannel, filepath.Join(c.cniBin, "flannel")); err != nil {
		t.Fatal(err)
	}
	if set == "reference" {
		for _, name := range []string{"bridge", "host-local", "portmap"} {
			copyFile(t, refPlugin(t, name), filepath.Join(c.cniBin, name), 0o755)
		}
	}

	c.sw = testenv.NewNS(t, c.prefix+"-sw")
	c.sw.MustRun("ip", "link", "add", "ul0", "type", "bridge")
	c.sw.MustRun("ip", "addr", "add", etcdAddr+"/24", "dev", "ul0", "nodad")
	c.sw.MustRun("ip", "link", "set", "ul0", "up")
	c.outside = testenv.NewNS(t, c.prefix+"-out")
	c.plug(c.outside, "out", outsideAddr, "100")
	c.outside.Start(filepath.Join(c.bin, "hello"), "serve", "-port", fmt.Sprint(helloPort))
	if c.flannel() {
		c.startEtcd()
	}
	for i := 1; i <= 3; i++ {
		c.nodes = append(c.nodes, c.newNode(i))
	}
	switch {
	case !c.flannel():
		c.installOwnConflist()
	case set == "ours":
		c.installOurs(c.nodes[0])
	}
	c.waitRoutes()
	t.Cleanup(func() {
		if c.pass+len(c.failed) == 0 {
			return // the bench: no checks
		}
		t.Logf("cluster %s/%s: %d checks: %d passed, %d failed\n  %s", v.name, set, c.pass+len(c.failed), c.pass, len(c.failed), strings.Join(c.results, "\n  "))
	})
	return c
}

// installOurs puts our plugins beside the flannel plugin as the cluster
// installer does on a flannel node: the node's conflist is flannel's, so
// the installer refuses to write ours beside it, and with -binaries-only
// copies the plugins and leaves the conflist directory alone.
func (c *cluster) installOurs(n *node) {
	installer, src := filepath.Join(c.bin, "dnet-installer"), c.installerSrc()
	netD := filepath.Join(n.dir, "net.d")
	out, err := exec.Command(installer, "-src", src, "-bin-dir", c.cniBin, "-conf-dir", netD, "-pod-cidr", n.subnetNet()).CombinedOutput()
	refused := err != nil && strings.Contains(string(out), "10-flannel.conflist") && strings.Contains(string(out), "-binaries-only")
	c.check("installer: refuses to write its conflist beside flannel's", errUnless(refused, fmt.Sprintf("%v: %s", err, out)))
	out, err = exec.Command(installer, "-binaries-only", "-src", src, "-bin-dir", c.cniBin, "-conf-dir", netD).CombinedOutput()
	if err != nil {
		c.t.Fatalf("dnet-installer -binaries-only: %v: %s", err, out)
	}
	entries, _ := os.ReadDir(netD)
	conf, _ := os.ReadFile(filepath.Join(netD, "10-flannel.conflist"))
	c.check("installer -binaries-only: flannel's conflist alone and unchanged",
		errUnless(len(entries) == 1 && string(conf) == c.conf, fmt.Sprintf("conf dir holds %v", entries)))
}

// installerSrc lays out what the installer image holds: bin/ and the
// Kubernetes conflist.
func (c *cluster) installerSrc() string {
	if _, err := os.Stat(filepath.Join(c.bin, "dnet-installer")); err != nil {
		c.t.Fatalf("%v (make installer builds it)", err)
	}
	src := filepath.Join(c.dir, "installer-src")
	if _, err := os.Stat(src); err == nil {
		return src
	}
	if err := os.MkdirAll(src, 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Symlink(c.bin, filepath.Join(src, "bin")); err != nil {
		c.t.Fatal(err)
	}
	data, err := os.ReadFile("../conf/kubernetes/10-dockernet.conflist")
	if err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "10-dockernet.conflist"), data, 0o644); err != nil {
		c.t.Fatal(err)
	}
	return src
}

// plug connects ns to the underlay switch with address addr, and in a
// dual-stack cluster underlay6+host6 too.
func (c *cluster) plug(ns *testenv.NS, port, addr, host6 string) {
	testenv.Link(c.t, c.sw, port, "", ns, "eth0", addr+"/24")
	c.sw.MustRun("ip", "link", "set", port, "master", "ul0")
	if c.ipv6 {
		ns.MustRun("ip", "addr", "add", underlay6+host6+"/64", "dev", "eth0", "nodad")
	}
}

// startEtcd runs a one-member etcd on the switch and stores flannel's
// network config in it.
func (c *cluster) startEtcd() {
	client, peer := "http://"+etcdAddr+":2379", "http://127.0.0.1:2380"
	c.startLogged(c.sw.Start, "etcd", filepath.Join(c.tools, "etcd"), "--name", "default", "--data-dir", filepath.Join(c.dir, "etcd"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "default="+peer,
		"--log-level", "warn")
	testenv.Eventually(c.t, 20*time.Second, "etcd health", func() error {
		out, err := c.sw.Run(filepath.Join(c.bin, "hello"), "get", client+"/health")
		if err == nil && !strings.Contains(out, `"health":"true"`) {
			err = fmt.Errorf("%s", out)
		}
		return err
	})
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	body := fmt.Sprintf(`{"key":%q,"value":%q}`, b64("/coreos.com/network/config"), b64(fmt.Sprintf(c.netConf(), c.backend)))
	c.sw.MustRun(filepath.Join(c.bin, "hello"), "post", client+"/v3/kv/put", body)
}

func (c *cluster) netConf() string {
	if c.ipv6 {
		return flannelNetConf6
	}
	return flannelNetConf
}

// startLogged starts a daemon through start (a netns's Start, say) and
// prints what it said when the test fails.
func (c *cluster) startLogged(start func(...string) *exec.Cmd, name string, args ...string) *exec.Cmd {
	cmd := start(args...)
	c.t.Cleanup(func() {
		if c.t.Failed() {
			out := fmt.Sprint(cmd.Stdout)
			if len(out) > 4000 {
				out = "…" + out[len(out)-4000:]
			}
			c.t.Logf("%s said:\n%s", name, out)
		}
	})
	return cmd
}

func (c *cluster) newNode(i int) *node {
	t := c.t
	n := &node{c: c, name: fmt.Sprintf("n%d", i), addr: underlayPrefix + fmt.Sprint(i), dir: filepath.Join(c.dir, fmt.Sprintf("n%d", i))}
	n.ns = testenv.NewNS(t, c.prefix+"-"+n.name)
	c.plug(n.ns, n.name, n.addr, fmt.Sprint(i))
	var mounts [][]string
	for _, d := range []struct{ own, at string }{{"var-lib-cni", "/var/lib/cni"}, {"run-flannel", "/run/flannel"}, {"net.d", "/etc/cni/net.d"}} {
		own := filepath.Join(n.dir, d.own)
		if err := os.MkdirAll(own, 0o755); err != nil {
			t.Fatal(err)
		}
		mounts = append(mounts, []string{"--bind", own, d.at})
	}
	n.privateMounts = newPrivateMounts(t, mounts)
	if c.flannel() {
		if err := os.WriteFile(filepath.Join(n.dir, "net.d", "10-flannel.conflist"), []byte(c.conf), 0o644); err != nil {
			t.Fatal(err)
		}
		n.startFlanneld()
		t.Cleanup(n.stopFlanneld)
		n.loadConflist("10-flannel.conflist")
	}
	n.cni = libcni.NewCNIConfigWithCacheDir([]string{c.cniBin}, n.cacheDir(), &testenv.WrappedExec{Prefix: n.netnsPrefix(n.ns.Path())})
	return n
}

// cacheDir is libcni's cache of the node's runtime, whichever process
// drives it (the test's, or the bench's driver inside the node).
func (n *node) cacheDir() string { return filepath.Join(n.dir, "libcni-cache") }

// loadConflist reads the node's conflist, as the runtime does.
func (n *node) loadConflist(name string) {
	list, err := libcni.ConfListFromFile(filepath.Join(n.dir, "net.d", name))
	if err != nil {
		n.c.t.Fatal(err)
	}
	n.list = list
}

// through is how the chain is driven, for check names.
func (c *cluster) through() string {
	if c.flannel() {
		return " through flannel"
	}
	return ""
}

// flannel says whether the cluster runs flannel; without it, the nodes
// run conf/kubernetes's conflist and route each other's pod CIDRs.
func (c *cluster) flannel() bool { return c.backend != "" }

// installOwnConflist installs our plugins and conf/kubernetes's conflist
// on every node with the cluster installer, node i getting pod CIDR
// 10.244.i.0/24, and routes each node's pod CIDR to it from the others,
// as cloud routes or kube-router would.
func (c *cluster) installOwnConflist() {
	src := c.installerSrc()
	for _, n := range c.nodes {
		out, err := exec.Command(filepath.Join(c.bin, "dnet-installer"), "-src", src, "-bin-dir", c.cniBin,
			"-conf-dir", filepath.Join(n.dir, "net.d"), "-pod-cidr", n.subnetNet()).CombinedOutput()
		if err != nil {
			c.t.Fatalf("dnet-installer on %s: %v: %s", n.name, err, out)
		}
		n.loadConflist("10-dockernet.conflist")
		for _, other := range c.nodes {
			if other != n {
				n.ns.MustRun("ip", "route", "add", other.subnetNet(), "via", other.addr)
			}
		}
	}
}

// startFlanneld runs flanneld as kube-flannel's DaemonSet does, with etcd
// in place of the API server.
func (n *node) startFlanneld() {
	args := []string{filepath.Join(n.c.tools, "flanneld"),
		"-etcd-endpoints=http://" + etcdAddr + ":2379", "-iface=eth0", "-public-ip=" + n.addr, "-ip-masq"}
	if n.c.ipv6 {
		args = append(args, "-public-ipv6="+n.addr6())
	}
	if n.c.iptablesResync > 0 {
		args = append(args, fmt.Sprintf("-iptables-resync=%d", n.c.iptablesResync))
	}
	n.flanneld = n.inNetns(n.ns.Path(), args...)
	n.flanneld.Stdout, n.flanneld.Stderr = &n.log, &n.log
	if err := n.flanneld.Start(); err != nil {
		n.c.t.Fatalf("start flanneld on %s: %v", n.name, err)
	}
	// Started together, one flanneld sometimes never hears of a lease
	// another took while it was setting up its etcd watch, and has no
	// route to that node's pods. So each node starts once the one before
	// has its lease and is watching (as nodes join a real cluster).
	testenv.Eventually(n.c.t, 20*time.Second, "flanneld on "+n.name+" watching the leases", func() error {
		if !strings.Contains(n.log.String(), "sending reset results") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
}

// addr6 is the node's IPv6 underlay address (dual stack).
func (n *node) addr6() string { return underlay6 + strings.TrimPrefix(n.name, "n") }

func (n *node) stopFlanneld() {
	_ = n.flanneld.Process.Kill()
	_ = n.flanneld.Wait()
	if n.c.t.Failed() {
		n.c.t.Logf("flanneld on %s said:\n%s", n.name, lastLines(n.log.String(), 30))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// subnet is the node's pod subnet, from flanneld's subnet file.
func (n *node) subnet() string {
	if !n.c.flannel() {
		return "10.244." + strings.TrimPrefix(n.name, "n") + ".1/24"
	}
	data, _ := os.ReadFile(filepath.Join(n.dir, "run-flannel", "subnet.env"))
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "FLANNEL_SUBNET="); ok {
			return v
		}
	}
	n.c.t.Fatalf("no FLANNEL_SUBNET in %s's subnet file: %q", n.name, data)
	return ""
}

// subnetNet is the node's pod subnet as a network ("10.244.7.0/24"); the
// subnet file names the gateway address in it.
func (n *node) subnetNet() string {
	_, ipnet, err := net.ParseCIDR(n.subnet())
	if err != nil {
		n.c.t.Fatal(err)
	}
	return ipnet.String()
}

// waitRoutes waits until every node's flanneld has routed the subnet of
// every other node.
func (c *cluster) waitRoutes() {
	for _, n := range c.nodes {
		if missing := n.missingRoutes(30 * time.Second); missing != "" {
			c.t.Fatalf("flanneld on %s has no route to %s", n.name, missing)
		}
	}
}

// missingRoutes waits up to timeout for n's routes to the other nodes'
// pod subnets and names the first still missing, or "".
func (n *node) missingRoutes(timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	for _, other := range n.c.nodes {
		if other == n {
			continue
		}
		subnet := other.subnetNet()
		for {
			out, err := n.ns.Run("ip", "route", "show", subnet)
			if err == nil && strings.TrimSpace(out) != "" {
				break
			}
			if time.Now().After(deadline) {
				return other.name + "'s pods " + subnet
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return ""
}

// rt is what containerd's CRI passes for a pod sandbox of kubelet's.
func (p *pod) rt() *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{ContainerID: p.id, NetNS: p.ns.Path(), IfName: "eth0", Args: [][2]string{
		{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", p.name}, {"K8S_POD_INFRA_CONTAINER_ID", p.id}, {"K8S_POD_UID", p.id + "-uid"},
	}}
	ms := p.ports
	if ms == nil {
		ms = []mapping{}
	}
	rt.CapabilityArgs = map[string]any{"portMappings": ms}
	return rt
}

// addPod makes a pod netns running hello (:5000, and a sink on :5001)
// and adds it to the node's network.
func (n *node) addPod(name string, ports []mapping) *pod {
	c := n.c
	p := &pod{name: name, id: c.prefix + "-" + name + "-sandbox", node: n, ports: ports}
	p.ns = testenv.NewNS(c.t, c.prefix+"-"+name)
	p.ns.Start(filepath.Join(c.bin, "hello"), "serve", "-port", fmt.Sprint(helloPort))
	p.ns.Start(filepath.Join(c.bin, "hello"), "sink", "-port", fmt.Sprint(sinkPort))
	if _, err := n.cni.AddNetworkList(context.Background(), n.list, p.rt()); err != nil {
		c.t.Fatalf("ADD of pod %s on %s through flannel: %v", name, n.name, err)
	}
	c.t.Cleanup(func() { _ = n.cni.DelNetworkList(context.Background(), n.list, p.rt()) })
	p.ip = containerIP(c.t, &container{ns: p.ns})
	c.podIPs = append(c.podIPs, p.ip)
	if c.ipv6 {
		p.ip6 = containerIP6(c.t, &container{ns: p.ns})
		c.podIPs = append(c.podIPs, p.ip6)
	}
	return p
}

func (n *node) delPod(p *pod) error {
	return n.cni.DelNetworkList(context.Background(), n.list, p.rt())
}

// check counts one path of the summary.
func (c *cluster) check(what string, err error) {
	c.t.Helper()
	if err != nil {
		c.failed = append(c.failed, what)
		c.results = append(c.results, "FAIL "+what)
		c.t.Errorf("cluster %s/%s: FAIL %s: %v", c.t.Name(), c.set, what, err)
		return
	}
	c.pass++
	c.results = append(c.results, "ok   "+what)
}

// reachFrom asks hello at addr:port from ns; wantPeer, when set, is the
// source address the server must have seen.
func (c *cluster) reachFrom(ns *testenv.NS, proto, addr string, port int, wantPeer string) error {
	var r reply
	var err error
	// The first packet across the overlay may wait for its neighbour
	// entries (vxlan's FDB and ARP proxying): one retry.
	for try := 0; try < 2; try++ {
		if r, err = c.request(ns, proto, addr, port); err == nil {
			break
		}
	}
	if err != nil {
		return err
	}
	if wantPeer != "" && r.peer != wantPeer {
		return fmt.Errorf("the server saw %s, want %s", r.peer, wantPeer)
	}
	return nil
}

// TestClusterFlannel runs kube-flannel's stack on three nodes, per flannel
// backend, with our plugins and with the reference plugins, and walks
// every path a cluster relies on.
func TestClusterFlannel(t *testing.T) {
	testenv.RequireRoot(t)
	tools := clusterTools(t)
	for _, v := range clusterVariants {
		for _, set := range []string{"ours", "reference"} {
			t.Run(v.name+"/"+set, func(t *testing.T) {
				t.Parallel()
				c := newCluster(t, tools, v, set)
				c.walkPaths()
			})
		}
	}
}

// TestClusterOwnConflist runs conf/kubernetes's conflist, as the cluster
// installer renders it, on three nodes that route each other's pod CIDRs
// (what cloud routes or kube-router provide; nothing of ours routes
// across nodes), and walks the same paths: pods keep their source
// towards other nodes' pods (nonMasqueradeCIDRs) and are masqueraded
// beyond the pod network.
func TestClusterOwnConflist(t *testing.T) {
	testenv.RequireRoot(t)
	tools := clusterTools(t)
	c := newCluster(t, tools, clusterVariant{name: "own-conflist, static routes"}, "ours")
	c.walkPaths()
}

// TestClusterFlannelIPTables: our iptables backend under flannel (vxlan),
// chosen by the one key each plugin has for it in kube-flannel's conflist,
// beside flanneld's own iptables rules.
func TestClusterFlannelIPTables(t *testing.T) {
	testenv.RequireRoot(t)
	tools := clusterTools(t)
	c := newCluster(t, tools, clusterVariant{name: "vxlan, our iptables backend", backend: "vxlan", ourBackend: "iptables"}, "ours")
	c.walkPaths()
}

// clusterVariant is a flannel backend, single or dual stack; no backend
// is conf/kubernetes's conflist without flannel.
type clusterVariant struct {
	name, backend string
	ipv6          bool
	ourBackend    string // our netfilter backend, set in the conflist; "" for the default (nftables)
	// flanneld's -iptables-resync in seconds, 0 for its default (5):
	// each run re-checks its rules with an iptables exec per rule.
	iptablesResync int
}

var clusterVariants = []clusterVariant{{name: "vxlan", backend: "vxlan"}, {name: "host-gw", backend: "host-gw"}, {name: "vxlan-dual-stack", backend: "vxlan", ipv6: true}}

func (c *cluster) walkPaths() {
	n1, n2, n3 := c.nodes[0], c.nodes[1], c.nodes[2]
	a := n1.addPod("a", nil)
	b := n2.addPod("b", both(hostPort, ""))
	p3 := n3.addPod("c", nil)
	for _, p := range []*pod{a, b, p3} {
		c.waitPod(p)
	}

	c.check("pod → pod across nodes, n1 → n2 (source kept)", c.reachFrom(a.ns, "tcp", b.ip, helloPort, a.ip))
	c.check("pod → pod across nodes, n2 → n1 (source kept)", c.reachFrom(b.ns, "tcp", a.ip, helloPort, b.ip))
	c.check("pod → pod across nodes, n3 → n2, UDP", c.reachFrom(p3.ns, "udp", b.ip, helloPort, p3.ip))
	c.check("node → pod on another node, n1 → n2", c.reachFrom(n1.ns, "tcp", b.ip, helloPort, ""))
	c.check("node → pod on another node, n3 → n1", c.reachFrom(n3.ns, "tcp", a.ip, helloPort, ""))
	c.check("Service: DNATed on n1 to a pod on n2 (source kept)", c.service(n1, a, b))
	c.check("hostPort from outside the cluster, TCP", c.reachFrom(c.outside, "tcp", n2.addr, hostPort, ""))
	c.check("hostPort from outside the cluster, UDP", c.reachFrom(c.outside, "udp", n2.addr, hostPort, ""))
	c.check("hostPort from a pod on another node", c.reachFrom(a.ns, "tcp", n2.addr, hostPort, ""))
	c.check("hairpin: a pod to its own hostPort", c.reachFrom(b.ns, "tcp", n2.addr, hostPort, ""))
	c.check("outbound: pod → outside, masqueraded to its node", c.reachFrom(a.ns, "tcp", outsideAddr, helloPort, n1.addr))
	if c.ipv6 {
		c.check("IPv6: pod → pod across nodes, n1 → n2 (source kept)", c.reachFrom(a.ns, "tcp", b.ip6, helloPort, a.ip6))
		c.check("IPv6: pod → pod across nodes, n3 → n1, UDP", c.reachFrom(p3.ns, "udp", a.ip6, helloPort, p3.ip6))
		c.check("IPv6: node → pod on another node", c.reachFrom(n1.ns, "tcp", b.ip6, helloPort, ""))
		c.check("IPv6: hostPort from outside the cluster", c.reachFrom(c.outside, "tcp", n2.addr6(), hostPort, ""))
		c.check("IPv6: hostPort from a pod on another node", c.reachFrom(a.ns, "tcp", n2.addr6(), hostPort, ""))
		c.check("IPv6: outbound, masqueraded to its node", c.reachFrom(a.ns, "tcp", underlay6+"100", helloPort, n1.addr6()))
	}
	switch {
	case !c.flannel():
		c.check("dnetctl list: gatewayMode nat-unprotected, set in the conflist", c.listsMode(n2, b, "nat-unprotected: set in the network config"))
	case c.set == "ours":
		c.check("dnetctl list: gatewayMode nat-unprotected for a Kubernetes pod", c.listsMode(n2, b, "nat-unprotected: Kubernetes pod default/b"))
		// The iptables backend drops direct routing from the end of FORWARD,
		// after flanneld's accepts for the pod network, and per bridge: an
		// explicit nat there protects nothing (issue 19 moves the drops
		// before any accept).
		if !c.ipt {
			c.explicitNAT(n1, n2, a)
		}
	}

	for _, p := range []*pod{a, b, p3} {
		c.check("DEL of pod "+p.name+c.through(), p.node.delPod(p))
	}
	for _, n := range c.nodes {
		c.check("nothing left on "+n.name+" after DEL", n.leftovers(c.podIPs...))
	}
	if c.set == "ours" && c.flannel() {
		c.check("GC: a pod whose DEL never came is collected", c.gcForgottenPod(n1))
	}
}

// waitPod waits until the pod's server answers from its own node.
func (c *cluster) waitPod(p *pod) {
	testenv.Eventually(c.t, 10*time.Second, "hello in pod "+p.name, func() error {
		_, err := c.request(p.node.ns, "tcp", p.ip, helloPort)
		return err
	})
}

// service DNATs a ClusterIP on node n to pod dst, as kube-proxy does for
// traffic from a pod of n, in a table of the test's own, and asks from
// pod src: the connection arrives on dst's node addressed to dst and
// with src's address, DNATed on another host.
func (c *cluster) service(n *node, src, dst *pod) error {
	table := "dnettest_svc"
	rules := fmt.Sprintf("table ip %s {\n chain pre {\n  type nat hook prerouting priority dstnat; policy accept;\n  ip daddr %s tcp dport 80 dnat to %s:%d\n }\n}\n", table, serviceVIP, dst.ip, helloPort)
	path := filepath.Join(c.dir, "svc.nft")
	if err := os.WriteFile(path, []byte(rules), 0o644); err != nil {
		return err
	}
	if out, err := n.ns.Run("nft", "-f", path); err != nil {
		return fmt.Errorf("nft -f: %v: %s", err, out)
	}
	defer n.ns.Run("nft", "delete", "table", "ip", table)
	return c.reachFrom(src.ns, "tcp", serviceVIP, 80, src.ip)
}

// explicitNAT adds a pod on n with a delegate that sets gatewayMode nat:
// the explicit key wins over the Kubernetes default, so a pod on another
// node reaches it only through its published port, and dnetctl says why.
func (c *cluster) explicitNAT(from, n *node, src *pod) {
	conf := strings.Replace(c.conf, `"isDefaultGateway": true`, `"isDefaultGateway": true, "gatewayMode": "nat"`, 1)
	list, err := libcni.ConfListFromBytes([]byte(conf))
	if err != nil {
		c.t.Fatal(err)
	}
	kube := n.list
	n.list = list
	defer func() { n.list = kube }()
	x := n.addPod("x", []mapping{{HostPort: hostPort + 2, ContainerPort: helloPort, Protocol: "tcp"}})
	c.waitPod(x)
	c.check("gatewayMode nat set in the delegate: a pod on another node is refused by address", c.refusedFrom(src.ns, x.ip))
	c.check("gatewayMode nat set in the delegate: its hostPort still answers", c.reachFrom(src.ns, "tcp", n.addr, hostPort+2, ""))
	c.check("dnetctl list: gatewayMode nat, set in the network config", c.listsMode(n, x, "nat: set in the network config"))
	c.check("DEL of pod x through flannel", n.delPod(x))
}

// refusedFrom asserts a TCP request from ns to ip's hello goes unanswered.
func (c *cluster) refusedFrom(ns *testenv.NS, ip string) error {
	if r, err := c.request(ns, "tcp", ip, helloPort); err == nil {
		return fmt.Errorf("%s:%d answered (peer %s) but must not", ip, helloPort, r.peer)
	}
	return nil
}

// listsMode checks that dnetctl, run on the pod's node, says which
// gateway mode the pod got and why (want: "MODE: WHY").
func (c *cluster) listsMode(n *node, p *pod, want string) error {
	cmd := n.inNetns(n.ns.Path(), filepath.Join(c.bin, "dnetctl"), "list")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("dnetctl list: %v: %s", err, out)
	}
	want = fmt.Sprintf("%s/eth0: gatewayMode %s", p.id, want)
	if !strings.Contains(string(out), want) {
		return fmt.Errorf("dnetctl list does not say %q:\n%s", want, out)
	}
	return nil
}

// leftovers names what the removed pods left on the node: veths on cni0,
// rules or elements naming their addresses, reservations, records, or
// libcni cache entries. Lock files, host-local's last-reserved markers
// host-local's index marker and the flannel plugin's empty data
// directory may stay.
func (n *node) leftovers(ips ...string) error {
	var found []string
	if out, err := n.ns.Run("ip", "-o", "link", "show", "master", "cni0"); err == nil && strings.TrimSpace(out) != "" {
		found = append(found, "veths on cni0: "+strings.TrimSpace(out))
	}
	rules, _ := n.ns.Run("nft", "list", "ruleset")
	for _, ip := range ips {
		for _, end := range []string{" ", "\n", ",", "/32", ":"} {
			if strings.Contains(rules, ip+end) {
				found = append(found, "the ruleset still names "+ip)
				break
			}
		}
	}
	for _, base := range []string{"var-lib-cni", "libcni-cache"} {
		_ = filepath.Walk(filepath.Join(n.dir, base), func(p string, fi os.FileInfo, err error) error {
			if err != nil || fi.IsDir() || fi.Name() == "lock" || fi.Name() == "complete" || strings.HasSuffix(fi.Name(), ".lock") || strings.HasPrefix(fi.Name(), "last_reserved_ip.") {
				return nil
			}
			rel, _ := filepath.Rel(n.dir, p)
			found = append(found, rel)
			return nil
		})
	}
	if len(found) > 0 {
		return fmt.Errorf("left behind: %s", strings.Join(found, "; "))
	}
	return nil
}

// gcForgottenPod adds a pod, removes its netns as a crashed runtime would
// without a DEL, and runs `dnetctl gc` on the node for the network the
// flannel plugin delegated (cbr0), with a live pod listed: the forgotten
// pod's reservation, records and rules go, the live one keeps its own.
// The flannel plugin's own copy of the delegate config for the forgotten
// pod is flannel's to collect, and is not checked.
func (c *cluster) gcForgottenPod(n *node) error {
	live := n.addPod("live", nil)
	gone := n.addPod("gone", both(hostPort+1, ""))
	goneIP := gone.ip
	if err := gone.ns.Delete(); err != nil {
		return err
	}
	// The delegate config as the flannel plugin generates it, in a list.
	gcList := filepath.Join(n.dir, "gc.conflist")
	conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"cbr0","plugins":[{"type":"bridge","ipam":{"type":"host-local","ranges":[[{"subnet":%q}]]}},{"type":"portmap"}]}`, n.subnetNet())
	if err := os.WriteFile(gcList, []byte(conf), 0o644); err != nil {
		return err
	}
	cmd := n.inNetns(n.ns.Path(), filepath.Join(c.bin, "dnetctl"), "gc", "-conflist", gcList, "-cni-path", c.cniBin, "-valid", live.id+"/eth0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("dnetctl gc: %v: %s", err, out)
	}
	if err := c.reachFrom(n.ns, "tcp", live.ip, helloPort, ""); err != nil {
		return fmt.Errorf("the live pod lost its network to GC: %v", err)
	}
	if err := n.delPod(live); err != nil {
		return err
	}
	_ = os.RemoveAll(filepath.Join(n.dir, "var-lib-cni", "flannel", gone.id))
	_ = os.RemoveAll(filepath.Join(n.dir, "libcni-cache", "results", "cbr0-"+gone.id+"-eth0"))
	return n.leftovers(goneIP, live.ip)
}
