package e2e

import (
	"context"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// The topology every end-to-end test builds for itself:
//
//	client netns  eth0 192.0.2.2/24 ──veth── eth0 192.0.2.1/24 + 192.0.2.3/24  host netns
//	                                                       docker0 172.17.0.1/16 (made by bridge)
//	                                                        ├─ veth ── eth0 container c1
//	                                                        └─ veth ── eth0 container c2 …
//
// The plugins run inside the host netns, so bridges, rules and sysctls
// never touch the real host. 192.0.2.0/24 is TEST-NET-1, routed nowhere.
const (
	hostAddr   = "192.0.2.1"
	hostAddr2  = "192.0.2.3" // a second host address, for hostIP-bound mappings
	clientAddr = "192.0.2.2"
	gatewayIP  = "172.17.0.1"
	netName    = "docker0"
	helloPort  = 5000
)

type world struct {
	t        *testing.T
	backend  string // "iptables" or "nftables"
	prefix   string
	bin      string
	host     *testenv.NS
	client   *testenv.NS
	dir      string
	env      []string // added to the plugins' environment
	iptables string   // the iptables command of the flavour the host uses
	cniPath  []string // where plugins are found: ours, then others chained after them
	ipv6     bool     // dual stack: host, client and the default network have IPv6 too
}

// gcVersion is the cniVersion of the tests that run CNI GC: libcni runs it
// only from 1.1.0, and the shipped conflists say 1.0.0 so that runtimes
// with an older libcni (containerd 1.6 and 1.7, Podman 4) can read results.
const gcVersion = "1.1.0"

// backends are the netfilter backends every end-to-end test runs with.
var backends = []string{"iptables", "nftables"}

func newWorld(t *testing.T, backend string) *world {
	testenv.RequireRoot(t)
	w := &world{t: t, backend: backend, prefix: testenv.Prefix(), bin: testenv.Bin(t), dir: t.TempDir(), iptables: "iptables"}
	w.cniPath = []string{w.bin}
	w.cniPath = []string{w.bin}
	w.host = testenv.NewNS(t, w.prefix+"-host")
	w.client = testenv.NewNS(t, w.prefix+"-client")
	testenv.Link(t, w.host, "eth0", hostAddr+"/24", w.client, "eth0", clientAddr+"/24")
	w.host.MustRun("ip", "addr", "add", hostAddr2+"/24", "dev", "eth0", "nodad")
	return w
}

// conflist is conf/10-docker0.conflist as shipped, with the reservation
// and state directories moved into the test's temp dir, the backend chosen
// and the cniVersion set.
func (w *world) conflist(cniVersion string) []byte {
	n := network{cniVersion: cniVersion}
	if w.ipv6 {
		n.file = "dual-stack/10-docker0.conflist"
	}
	return w.network(n)
}

// The IPv6 side of a dual-stack world: 2001:db8::/32 is documentation
// space, fd00:17::/64 a unique local range (that of
// conf/dual-stack/10-docker0.conflist); neither is routed anywhere.
const (
	hostAddr6   = "2001:db8:1::1"
	hostAddr6b  = "2001:db8:1::3" // a second host address, for hostIP-bound mappings
	clientAddr6 = "2001:db8:1::2"
)

// dualStack gives the host and the client IPv6 addresses, and the default
// network an IPv6 range.
func (w *world) dualStack() {
	w.ipv6 = true
	w.host.MustRun("ip", "addr", "add", hostAddr6+"/64", "dev", "eth0", "nodad")
	w.host.MustRun("ip", "addr", "add", hostAddr6b+"/64", "dev", "eth0", "nodad")
	w.client.MustRun("ip", "addr", "add", clientAddr6+"/64", "dev", "eth0", "nodad")
}

// network is a variant of the shipped conflist: another name, bridge and
// subnet, and bridge keys to set; the zero value is the shipped one.
type network struct {
	file         string // under conf/; 10-docker0.conflist when empty
	cniVersion   string
	name, bridge string
	subnet       string // its .1 is the gateway
	subnet6      string // with name: an IPv6 /64 too, its ::1 the gateway
	bridgeKeys   map[string]any
	portmapKeys  map[string]any
	chained      []map[string]any // plugins after portmap
}

func (w *world) network(n network) []byte {
	if n.file == "" {
		n.file = "10-docker0.conflist"
	}
	raw, err := os.ReadFile(filepath.Join("../conf", n.file))
	if err != nil {
		w.t.Fatal(err)
	}
	return w.networkFrom(raw, n)
}

// networkFrom is network with raw in place of a file of conf/.
func (w *world) networkFrom(raw []byte, n network) []byte {
	var conf map[string]any
	if err := json.Unmarshal(raw, &conf); err != nil {
		w.t.Fatal(err)
	}
	if n.cniVersion != "" {
		conf["cniVersion"] = n.cniVersion
	}
	bridge := conf["plugins"].([]any)[0].(map[string]any)
	ipam := bridge["ipam"].(map[string]any)
	ipam["dataDir"] = w.ipamDir()
	if n.name != "" {
		conf["name"], bridge["bridge"] = n.name, n.bridge
		gw := strings.TrimSuffix(n.subnet, ".0/16") + ".1"
		ipam["ranges"] = []any{[]any{map[string]any{"subnet": n.subnet, "gateway": gw}}}
		if n.subnet6 != "" {
			gw6 := strings.TrimSuffix(n.subnet6, "/64") + "1"
			ipam["ranges"] = append(ipam["ranges"].([]any), []any{map[string]any{"subnet": n.subnet6, "gateway": gw6}})
		}
	}
	bridge["ipMasqBackend"] = w.backend
	bridge["stateDir"] = w.stateDir()
	for k, v := range n.bridgeKeys {
		bridge[k] = v
	}
	portmap := conf["plugins"].([]any)[1].(map[string]any)
	portmap["backend"] = w.backend
	portmap["stateDir"] = w.stateDir()
	for k, v := range n.portmapKeys {
		portmap[k] = v
	}
	for _, p := range n.chained {
		conf["plugins"] = append(conf["plugins"].([]any), p)
	}
	out, _ := json.MarshalIndent(conf, "", "  ")
	return out
}

func (w *world) ipamDir() string  { return filepath.Join(w.dir, "ipam") }
func (w *world) stateDir() string { return filepath.Join(w.dir, "state") }

type container struct {
	ns *testenv.NS
	id string
}

// newContainer makes a container netns running the hello server on :5000.
func (w *world) newContainer(name string) *container {
	c := &container{ns: testenv.NewNS(w.t, w.prefix+"-"+name), id: w.prefix + "-" + name + "-id"}
	c.ns.Start(filepath.Join(w.bin, "hello"), "serve", "-port", fmt.Sprint(helloPort))
	return c
}

func (c *container) owner() netfilter.Owner {
	return netfilter.Owner{Network: netName, ContainerID: c.id, IfName: "eth0"}
}

type mapping struct {
	HostPort      int      `json:"hostPort"`
	ContainerPort int      `json:"containerPort"`
	Protocol      string   `json:"protocol"`
	HostIP        string   `json:"hostIP,omitempty"`
	SourceRanges  []string `json:"sourceRanges,omitempty"`
}

// both publishes port on TCP and UDP to the hello server.
func both(port int, hostIP string) []mapping {
	return []mapping{
		{HostPort: port, ContainerPort: helloPort, Protocol: "tcp", HostIP: hostIP},
		{HostPort: port, ContainerPort: helloPort, Protocol: "udp", HostIP: hostIP},
	}
}

// driver is how a runtime would call the plugins.
type driver interface {
	add(c *container, ms []mapping) (types.Result, error)
	check(c *container, ms []mapping) error
	del(c *container, ms []mapping) error
}

// libcniDriver calls the plugins through libcni, as containerd and CRI-O do.
type libcniDriver struct {
	w    *world
	cni  *libcni.CNIConfig
	list *libcni.NetworkConfigList
	exec *testenv.WrappedExec // its Stderr collects what successful plugins wrote there
}

func (w *world) libcni(cniVersion string) *libcniDriver {
	return w.libcniFor(w.conflist(cniVersion))
}

// libcniFor drives the plugins with conflist, as libcni would.
func (w *world) libcniFor(conflist []byte) *libcniDriver {
	list, err := libcni.ConfListFromBytes(conflist)
	if err != nil {
		w.t.Fatal(err)
	}
	exec := testenv.NetnsExec(w.host.Name, w.env)
	cni := libcni.NewCNIConfigWithCacheDir(w.cniPath, filepath.Join(w.dir, "cache"), exec)
	return &libcniDriver{w: w, cni: cni, list: list, exec: exec}
}

func (d *libcniDriver) rt(c *container, ms []mapping) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{ContainerID: c.id, NetNS: c.ns.Path(), IfName: "eth0"}
	if ms != nil {
		rt.CapabilityArgs = map[string]any{"portMappings": ms}
	}
	return rt
}

func (d *libcniDriver) add(c *container, ms []mapping) (types.Result, error) {
	return d.cni.AddNetworkList(context.Background(), d.list, d.rt(c, ms))
}

func (d *libcniDriver) check(c *container, ms []mapping) error {
	return d.cni.CheckNetworkList(context.Background(), d.list, d.rt(c, ms))
}

func (d *libcniDriver) del(c *container, ms []mapping) error {
	return d.cni.DelNetworkList(context.Background(), d.list, d.rt(c, ms))
}

// cnitoolDriver calls the plugins through the cnitool binary.
type cnitoolDriver struct {
	w       *world
	confDir string
}

func (w *world) cnitool() *cnitoolDriver {
	cnitoolPath(w.t)
	dir := filepath.Join(w.dir, "net.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "10-docker0.conflist"), w.conflist(""), 0o644); err != nil {
		w.t.Fatal(err)
	}
	return &cnitoolDriver{w: w, confDir: dir}
}

func (d *cnitoolDriver) run(cmd string, c *container, ms []mapping) (string, error) {
	capArgs, _ := json.Marshal(map[string]any{"portMappings": ms})
	abs := cnitoolPath(d.w.t)
	env := append([]string{"env", "CNI_PATH=" + d.w.bin, "NETCONFPATH=" + d.confDir, "CAP_ARGS=" + string(capArgs)}, d.w.env...)
	out, err := d.w.host.Run(append(env, abs, cmd, netName, c.ns.Path())...)
	if err != nil {
		return out, fmt.Errorf("cnitool %s: %v: %s", cmd, err, out)
	}
	return out, nil
}

// cnitool derives the container ID from the netns path.
func (d *cnitoolDriver) bind(c *container) {
	sum := sha512.Sum512([]byte(c.ns.Path()))
	c.id = fmt.Sprintf("cnitool-%x", sum[:10])
}

func (d *cnitoolDriver) add(c *container, ms []mapping) (types.Result, error) {
	d.bind(c)
	_, err := d.run("add", c, ms)
	return nil, err
}

func (d *cnitoolDriver) check(c *container, ms []mapping) error {
	_, err := d.run("check", c, ms)
	return err
}

func (d *cnitoolDriver) del(c *container, ms []mapping) error {
	_, err := d.run("del", c, ms)
	return err
}

// reply is what the hello server said: "Hello" and the peer it saw.
type reply struct{ peer string }

// request asks hello at addr:port over proto from inside ns.
func (w *world) request(from *testenv.NS, proto, addr string, port int) (reply, error) {
	hello := filepath.Join(w.bin, "hello")
	target := net.JoinHostPort(addr, fmt.Sprint(port))
	var out string
	var err error
	if proto == "tcp" {
		out, err = from.Run(hello, "get", "http://"+target+"/")
	} else {
		out, err = from.Run(hello, "udp", target)
	}
	if err != nil {
		return reply{}, fmt.Errorf("%s %s from %s: %v: %s", proto, target, from.Name, err, strings.TrimSpace(out))
	}
	if !strings.HasPrefix(out, "Hello\n") {
		return reply{}, fmt.Errorf("%s %s from %s: unexpected answer %q", proto, target, from.Name, out)
	}
	peer := strings.TrimSpace(strings.TrimPrefix(out, "Hello\npeer="))
	host, _, _ := strings.Cut(peer, ":")
	if strings.HasPrefix(peer, "[") {
		host = strings.Trim(strings.SplitN(peer, "]", 2)[0], "[")
	}
	return reply{peer: host}, nil
}

// mustReach asserts a request succeeds and returns the peer the server saw.
func (w *world) mustReach(from *testenv.NS, proto, addr string, port int) string {
	w.t.Helper()
	r, err := w.request(from, proto, addr, port)
	if err != nil {
		// Still a failure either way; the retry tells a lasting fault
		// from a transient one.
		state := w.netState(from)
		retry := "succeeded"
		if _, err2 := w.request(from, proto, addr, port); err2 != nil {
			retry = "failed too: " + err2.Error()
		}
		w.t.Fatalf("%v\nthe same request at once again %s\n%s", err, retry, state)
	}
	return r.peer
}

// netState is what a failed request leaves to look at: a timeout alone
// does not say whether the rules, conntrack or the neighbours were wrong.
func (w *world) netState(from *testenv.NS) string {
	var b strings.Builder
	show := func(ns *testenv.NS, args ...string) {
		out, err := ns.Run(args...)
		fmt.Fprintf(&b, "--- %s: %s (err %v)\n%s\n", ns.Name, strings.Join(args, " "), err, out)
	}
	show(w.host, "nft", "list", "ruleset")
	show(w.host, w.iptables+"-save")
	show(w.host, "conntrack", "-L")
	show(w.host, "ip", "neigh")
	show(from, "ip", "neigh")
	show(w.host, "bridge", "link")
	return b.String()
}

// mustNotReach asserts a request fails.
func (w *world) mustNotReach(from *testenv.NS, proto, addr string, port int) {
	w.t.Helper()
	if r, err := w.request(from, proto, addr, port); err == nil {
		w.t.Fatalf("%s %s:%d from %s answered (peer %s) but must not", proto, addr, port, from.Name, r.peer)
	}
}

// waitServing waits until c's hello server answers on its own address.
func (w *world) waitServing(c *container, ip string) {
	testenv.Eventually(w.t, 10*time.Second, "hello server in "+c.ns.Name, func() error {
		_, err := w.request(w.host, "tcp", ip, helloPort)
		return err
	})
}

// containerIP reads the container's eth0 IPv4 address.
func containerIP(t *testing.T, c *container) string { return containerAddr(t, c, "-4") }

// containerIP6 reads the container's eth0 global IPv6 address.
func containerIP6(t *testing.T, c *container) string { return containerAddr(t, c, "-6") }

func containerAddr(t *testing.T, c *container, family string) string {
	out := c.ns.MustRun("ip", family, "-o", "addr", "show", "dev", "eth0", "scope", "global")
	f := strings.Fields(out)
	for i, s := range f {
		if (s == "inet" || s == "inet6") && i+1 < len(f) {
			return strings.Split(f[i+1], "/")[0]
		}
	}
	t.Fatalf("no %s address on eth0 in %s: %s", family, c.ns.Name, out)
	return ""
}

// natRules is the host netns's nat table as iptables-save prints it, and
// the nftables ruleset (which includes our map and set elements).
func (w *world) natRules() string {
	rules := w.host.MustRun(w.iptables+"-save", "-t", "nat") + w.host.MustRun("nft", "list", "ruleset")
	if w.ipv6 {
		rules += w.host.MustRun(strings.Replace(w.iptables, "iptables", "ip6tables", 1)+"-save", "-t", "nat")
	}
	return rules
}

// assertGone checks nothing of c is left in the host netns (item 7).
func (w *world) assertGone(c *container, ip string, udpPorts []int) {
	w.t.Helper()
	rules := w.natRules()
	for _, needle := range []string{c.id, c.owner().Tag(), ip + "/", ip + ":"} {
		if strings.Contains(rules, needle) {
			w.t.Errorf("after DEL the nat table still mentions %q:\n%s", needle, rules)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(w.ipamDir(), netName))
	for _, e := range entries {
		data, _ := os.ReadFile(filepath.Join(w.ipamDir(), netName, e.Name()))
		if strings.Contains(string(data), c.id) || e.Name() == ip {
			w.t.Errorf("after DEL reservation %s remains (%q)", e.Name(), data)
		}
	}
	if records, _ := filepath.Glob(filepath.Join(w.stateDir(), "*", c.owner().Tag()+".json")); len(records) > 0 {
		w.t.Errorf("after DEL state records remain: %v", records)
	}
	if _, err := w.host.Run("ip", "link", "show", c.owner().HostVeth()); err == nil {
		w.t.Errorf("after DEL host veth %s remains", c.owner().HostVeth())
	}
	for _, p := range udpPorts {
		out, _ := w.host.Run("conntrack", "-L", "-p", "udp", "--orig-port-dst", fmt.Sprint(p))
		if strings.Contains(out, "dport="+fmt.Sprint(p)) {
			w.t.Errorf("after DEL conntrack still holds UDP entries for port %d:\n%s", p, out)
		}
	}
}

func TestMain(m *testing.M) {
	if os.Getenv(chainDriverEnv) != "" { // the cluster bench's driver, run inside a node
		os.Exit(runChainDriver())
	}
	testenv.Main(m, removeMadeDirs)
}
