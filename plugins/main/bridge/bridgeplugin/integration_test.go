package bridgeplugin_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// rig is a private host netns and one container netns.
type rig struct {
	t         *testing.T
	bin, data string
	backend   string // ipMasqBackend
	host, ctr *testenv.NS
}

func newRig(t *testing.T) *rig {
	testenv.RequireRoot(t)
	p := testenv.Prefix()
	return &rig{t: t, bin: testenv.Bin(t), data: t.TempDir(),
		host: testenv.NewNS(t, p+"-host"), ctr: testenv.NewNS(t, p+"-ctr")}
}

// conf is a bridge config; extra is spliced in as more top-level keys.
func (r *rig) conf(extra string) []byte {
	ipam := fmt.Sprintf(`"ipam":{"type":"host-local","dataDir":%q,"subnet":"10.77.0.0/24"}`, r.data)
	if strings.Contains(extra, `"ipam"`) {
		ipam = ""
	}
	backend := r.backend
	if backend == "" {
		backend = "iptables"
	}
	parts := []string{`"cniVersion":"1.1.0"`, `"name":"testnet"`, `"type":"bridge"`, `"bridge":"br-test"`,
		fmt.Sprintf(`"stateDir":%q,"ipMasqBackend":%q`, filepath.Join(r.data, "state"), backend)}
	for _, s := range []string{ipam, extra} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return []byte("{" + strings.Join(parts, ",") + "}")
}

func (r *rig) call(cmd string, conf []byte) ([]byte, error) {
	return r.host.Exec(r.bin, "bridge", testenv.Call{Command: cmd, ContainerID: "ctr1", Netns: r.ctr.Path(), IfName: "eth0", Conf: conf})
}

type linkInfo struct {
	IfName      string   `json:"ifname"`
	MTU         int      `json:"mtu"`
	Master      string   `json:"master"`
	Address     string   `json:"address"`
	Flags       []string `json:"flags"`
	Promiscuity int      `json:"promiscuity"`
	Operstate   string   `json:"operstate"`
	Info        *struct {
		SlaveData *struct {
			Hairpin bool `json:"hairpin"`
		} `json:"info_slave_data"`
	} `json:"linkinfo"`
}

func (r *rig) link(ns *testenv.NS, name string) (*linkInfo, bool) {
	out, err := ns.Run("ip", "-j", "-d", "link", "show", name)
	if err != nil {
		return nil, false
	}
	var ls []linkInfo
	if err := json.Unmarshal([]byte(out), &ls); err != nil || len(ls) != 1 {
		r.t.Fatalf("parse ip -j link: %v %s", err, out)
	}
	return &ls[0], true
}

// rules is the host's nat table and nftables ruleset.
func (r *rig) rules() string {
	ipt, _ := r.host.Run("iptables-save", "-t", "nat")
	nft, _ := r.host.Run("nft", "list", "ruleset")
	return ipt + nft
}

func hostVeth() string {
	return netfilter.Owner{Network: "testnet", ContainerID: "ctr1", IfName: "eth0"}.HostVeth()
}

// assertNothingLeft checks a failed ADD or a DEL left no veth, rule or reservation.
func (r *rig) assertNothingLeft() {
	r.t.Helper()
	if _, ok := r.link(r.host, hostVeth()); ok {
		r.t.Errorf("host veth %s left behind", hostVeth())
	}
	if _, ok := r.link(r.ctr, "eth0"); ok {
		r.t.Error("container eth0 left behind")
	}
	if rules := r.rules(); strings.Contains(rules, "ctr1") {
		r.t.Errorf("rules left behind:\n%s", rules)
	}
	if recs, _ := filepath.Glob(filepath.Join(r.data, "state", "*", "*.json")); len(recs) != 0 {
		r.t.Errorf("state records left behind: %v", recs)
	}
	files, _ := filepath.Glob(filepath.Join(r.data, "testnet", "10.*"))
	if len(files) != 0 {
		r.t.Errorf("reservations left behind: %v", files)
	}
}

func TestAddOptions(t *testing.T) {
	cases := []struct {
		name, extra string
		verify      func(t *testing.T, r *rig, res *current.Result)
	}{
		{"gateway, masquerade, hairpin, mtu", `"isDefaultGateway":true,"ipMasq":true,"hairpinMode":true,"mtu":1400`, func(t *testing.T, r *rig, res *current.Result) {
			br, _ := r.link(r.host, "br-test")
			veth, _ := r.link(r.host, hostVeth())
			ctr, _ := r.link(r.ctr, "eth0")
			if br.MTU != 1400 || veth.MTU != 1400 || ctr.MTU != 1400 {
				t.Errorf("mtu: bridge %d veth %d container %d, want 1400", br.MTU, veth.MTU, ctr.MTU)
			}
			if veth.Master != "br-test" || veth.Info == nil || veth.Info.SlaveData == nil || !veth.Info.SlaveData.Hairpin {
				t.Errorf("host veth not on bridge with hairpin: %+v", veth)
			}
			if out := r.host.MustRun("ip", "-4", "addr", "show", "br-test"); !strings.Contains(out, "10.77.0.1/24") {
				t.Errorf("bridge lacks gateway address:\n%s", out)
			}
			if out := r.ctr.MustRun("ip", "route"); !strings.Contains(out, "default via 10.77.0.1 dev eth0") {
				t.Errorf("container lacks default route:\n%s", out)
			}
			if v := strings.TrimSpace(r.host.MustRun("sysctl", "-n", "net.ipv4.ip_forward")); v != "1" {
				t.Errorf("ip_forward = %s", v)
			}
			// iptables: the network's rule, nftables: the container's elements.
			want := map[string]string{"iptables": "-s 10.77.0.0/24 ! -d 224.0.0.0/4 ! -o br-test", "nftables": `10.77.0.2 . "br-test"`}[r.backend]
			if rules := r.rules(); !strings.Contains(rules, want) {
				t.Errorf("%s masquerade missing (%q):\n%s", r.backend, want, rules)
			}
			if len(res.Interfaces) != 3 || res.Interfaces[2].Sandbox != r.ctr.Path() || *res.IPs[0].Interface != 2 {
				t.Errorf("result interfaces: %+v", res.Interfaces)
			}
		}},
		{"plain: no gateway address, promisc, fixed MAC", `"promiscMode":true,"runtimeConfig":{"mac":"02:42:ac:11:00:99"}`, func(t *testing.T, r *rig, res *current.Result) {
			br, _ := r.link(r.host, "br-test")
			ctr, _ := r.link(r.ctr, "eth0")
			if br.Promiscuity == 0 {
				t.Error("bridge not promiscuous")
			}
			if ctr.Address != "02:42:ac:11:00:99" || res.Interfaces[2].Mac != "02:42:ac:11:00:99" {
				t.Errorf("mac %s / %s", ctr.Address, res.Interfaces[2].Mac)
			}
			if out := r.host.MustRun("ip", "-4", "addr", "show", "br-test"); strings.Contains(out, "inet ") {
				t.Errorf("bridge got an address without isGateway:\n%s", out)
			}
		}},
		{"layer 2 only", `"ipam":{}`, func(t *testing.T, r *rig, res *current.Result) {
			if len(res.IPs) != 0 {
				t.Errorf("L2 network returned addresses %v", res.IPs)
			}
			if ctr, _ := r.link(r.ctr, "eth0"); ctr.Operstate == "DOWN" {
				t.Error("container interface left down")
			}
			r.wantIPv6Off(r.ctr, "eth0", false) // no IPAM: the container may address itself
			r.wantDADSkipped(r.ctr, "eth0")
		}},
		{"IPv4 only: IPv6 off on both veth ends, lo keeps it", ``, func(t *testing.T, r *rig, res *current.Result) {
			r.wantQuietPort(hostVeth())
			r.wantIPv6Off(r.ctr, "eth0", true)
			r.wantIPv6Off(r.ctr, "lo", false)
			if out := r.ctr.MustRun("ip", "-6", "addr", "show", "dev", "eth0"); strings.TrimSpace(out) != "" {
				t.Errorf("container eth0 has IPv6 addresses:\n%s", out)
			}
		}},
		{"IPv4 only with keepIPv6LinkLocal", `"keepIPv6LinkLocal":true`, func(t *testing.T, r *rig, res *current.Result) {
			r.wantQuietPort(hostVeth())
			r.wantIPv6Off(r.ctr, "eth0", false)
			r.wantDADSkipped(r.ctr, "eth0")
		}},
		{"dual stack keeps IPv6 on the container", `"ipam":{"type":"host-local","dataDir":"` + "@DATA@" + `","ranges":[[{"subnet":"10.77.0.0/24"}],[{"subnet":"fd00:77::/64"}]]}`, func(t *testing.T, r *rig, res *current.Result) {
			r.wantIPv6Off(r.ctr, "eth0", false)
			r.wantDADSkipped(r.ctr, "eth0")
			if out := r.ctr.MustRun("ip", "-6", "addr", "show", "dev", "eth0"); !strings.Contains(out, "fd00:77::2/64") {
				t.Errorf("container eth0 lacks its IPv6 address:\n%s", out)
			}
		}},
	}
	for _, backend := range []string{"iptables", "nftables"} {
		for _, c := range cases {
			t.Run(backend+"/"+c.name, func(t *testing.T) {
				r := newRig(t)
				r.backend = backend
				testAddOption(t, r, c.extra, c.verify)
			})
		}
	}
}

// wantIPv6Off checks the interface's disable_ipv6 sysctl.
func (r *rig) wantIPv6Off(ns *testenv.NS, ifName string, off bool) {
	r.t.Helper()
	got := strings.TrimSpace(ns.MustRun("cat", "/proc/sys/net/ipv6/conf/"+ifName+"/disable_ipv6"))
	if want := map[bool]string{true: "1", false: "0"}[off]; got != want {
		r.t.Errorf("%s: disable_ipv6 = %s, want %s", ifName, got, want)
	}
}

// wantDADSkipped checks that an interface keeping IPv6 does not wait for
// DAD (the default; "enabledad" turns DAD back on).
// wantQuietPort checks the host end makes no IPv6 address of its own:
// address generation off, and none there though it is up.
func (r *rig) wantQuietPort(ifName string) {
	r.t.Helper()
	if out := r.host.MustRun("ip", "-d", "link", "show", "dev", ifName); !strings.Contains(out, "addrgenmode none") || !strings.Contains(out, ",UP") {
		r.t.Errorf("%s: want up with addrgenmode none:\n%s", ifName, out)
	}
	if out := r.host.MustRun("ip", "-6", "addr", "show", "dev", ifName); strings.TrimSpace(out) != "" {
		r.t.Errorf("%s has IPv6 addresses:\n%s", ifName, out)
	}
	// The probe: what the port's own IPv6 stack sent (DAD, MLD, router
	// solicitations), once a port made after it with the kernel's
	// defaults, on the same bridge (the control), has sent some.
	r.host.MustRun("ip", "link", "add", "dnq0", "type", "veth", "peer", "name", "dnq1")
	r.host.MustRun("ip", "link", "set", "dnq0", "master", "br-test", "up")
	r.host.MustRun("ip", "link", "set", "dnq1", "up")
	sent := func(dev string) int {
		for _, line := range strings.Split(r.host.MustRun("cat", "/proc/net/dev_snmp6/"+dev), "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "Ip6OutRequests" {
				n, _ := strconv.Atoi(f[1])
				return n
			}
		}
		return -1
	}
	testenv.Eventually(r.t, 10*time.Second, "the control port sending IPv6", func() error {
		if n := sent("dnq0"); n <= 0 {
			return fmt.Errorf("dnq0 sent %d IPv6 packets", n)
		}
		return nil
	})
	if n := sent(ifName); n != 0 {
		r.t.Errorf("%s sent %d IPv6 packets of its own, want none", ifName, n)
	}
}

func (r *rig) wantDADSkipped(ns *testenv.NS, ifName string) {
	r.t.Helper()
	if got := strings.TrimSpace(ns.MustRun("cat", "/proc/sys/net/ipv6/conf/"+ifName+"/accept_dad")); got != "0" {
		r.t.Errorf("%s: accept_dad = %s, want 0", ifName, got)
	}
}

func testAddOption(t *testing.T, r *rig, extra string, verify func(*testing.T, *rig, *current.Result)) {
	conf := r.conf(strings.ReplaceAll(extra, "@DATA@", r.data))
	out, err := r.call("ADD", conf)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	res := &current.Result{}
	if err := json.Unmarshal(out, res); err != nil {
		t.Fatal(err)
	}
	verify(t, r, res)
	prevConf := withPrev(t, conf, out)
	if _, err := r.call("CHECK", prevConf); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if _, err := r.call("DEL", prevConf); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	r.assertNothingLeft()
	if _, err := r.call("DEL", conf); err != nil {
		t.Fatalf("second DEL (no prevResult): %v", err)
	}
}

func withPrev(t *testing.T, conf, result []byte) []byte {
	var m map[string]any
	if err := json.Unmarshal(conf, &m); err != nil {
		t.Fatal(err)
	}
	m["prevResult"] = json.RawMessage(result)
	out, _ := json.Marshal(m)
	return out
}

// A failure after the veth exists undoes everything ADD made.
func TestFailedAddLeavesNothing(t *testing.T) {
	t.Run("IPAM refuses", func(t *testing.T) {
		r := newRig(t)
		conf := r.conf(`"ipMasq":true,"isGateway":true,"args":{"cni":{"ips":["10.99.0.5"]}}`)
		_, err := r.call("ADD", conf)
		testenv.WantCode(t, err, 7, "outside every range")
		r.assertNothingLeft()
	})
	t.Run("bridge has another address", func(t *testing.T) {
		r := newRig(t)
		r.host.MustRun("ip", "link", "add", "br-test", "type", "bridge")
		r.host.MustRun("ip", "addr", "add", "10.9.9.1/24", "dev", "br-test")
		_, err := r.call("ADD", r.conf(`"isGateway":true,"ipMasq":true`))
		testenv.WantCode(t, err, 7, "forceAddress")
		r.assertNothingLeft()
		// forceAddress replaces it.
		out, err := r.call("ADD", r.conf(`"isGateway":true,"forceAddress":true`))
		if err != nil {
			t.Fatalf("ADD with forceAddress: %v", err)
		}
		if addrs := r.host.MustRun("ip", "-4", "addr", "show", "br-test"); !strings.Contains(addrs, "10.77.0.1/24") || strings.Contains(addrs, "10.9.9.1") {
			t.Errorf("forceAddress did not replace the address:\n%s", addrs)
		}
		_, _ = r.call("DEL", withPrev(t, r.conf(`"isGateway":true,"forceAddress":true`), out))
	})
	t.Run("name taken by a non-bridge", func(t *testing.T) {
		r := newRig(t)
		r.host.MustRun("ip", "link", "add", "br-test", "type", "veth", "peer", "name", "br-peer")
		_, err := r.call("ADD", r.conf(""))
		if err == nil || !strings.Contains(err.Error(), "not a bridge") {
			t.Fatalf("got %v", err)
		}
		r.assertNothingLeft()
	})
	t.Run("interface name taken in the container", func(t *testing.T) {
		r := newRig(t)
		r.ctr.MustRun("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer")
		_, err := r.call("ADD", r.conf(""))
		testenv.WantCode(t, err, 7, "already exists")
		if _, ok := r.link(r.host, hostVeth()); ok {
			t.Error("host veth left behind")
		}
		if files, _ := filepath.Glob(filepath.Join(r.data, "testnet", "10.*")); len(files) != 0 {
			t.Errorf("reservation left: %v", files)
		}
	})
}

func TestCheckNoticesDrift(t *testing.T) {
	r := newRig(t)
	conf := r.conf(`"isDefaultGateway":true,"ipMasq":true`)
	out, err := r.call("ADD", conf)
	if err != nil {
		t.Fatal(err)
	}
	prev := withPrev(t, conf, out)
	r.ctr.MustRun("ip", "addr", "flush", "dev", "eth0")
	if _, err := r.call("CHECK", prev); err == nil {
		t.Error("CHECK passed with the container's address removed")
	}
	if _, err := r.call("DEL", prev); err != nil {
		t.Fatal(err)
	}
	r.assertNothingLeft()
}

// The protocol surface: VERSION, error JSON codes, version negotiation.
func TestProtocolErrors(t *testing.T) {
	r := newRig(t)
	out, err := r.host.Exec(r.bin, "bridge", testenv.Call{Command: "VERSION", Conf: []byte(`{"cniVersion":"1.1.0"}`)})
	if err != nil || !strings.Contains(string(out), `"0.1.0"`) || !strings.Contains(string(out), `"1.1.0"`) {
		t.Fatalf("VERSION: %s %v", out, err)
	}
	for _, plugin := range []string{"bridge", "host-local", "portmap"} {
		t.Run(plugin, func(t *testing.T) {
			call := testenv.Call{Command: "ADD", ContainerID: "c", Netns: r.ctr.Path(), IfName: "eth0"}
			call.Conf = []byte(`{"cniVersion":"1.0.0","name":`)
			_, err := r.host.Exec(r.bin, plugin, call)
			testenv.WantCode(t, err, 6, "")
			call.Conf = []byte(`{"cniVersion":"0.0.9","name":"n","type":"x"}`)
			_, err = r.host.Exec(r.bin, plugin, call)
			testenv.WantCode(t, err, 1, "")
			call.Conf = []byte(`{"cniVersion":"1.0.0","name":"n","type":"x"}`)
			call.ContainerID = ""
			_, err = r.host.Exec(r.bin, plugin, call)
			testenv.WantCode(t, err, 4, "CNI_CONTAINERID")
		})
	}
}

func TestMain(m *testing.M) { testenv.Main(m) }
