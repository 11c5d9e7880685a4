package portmapplugin_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// prevResult as bridge would print it for a container at addr.
func prevResult(addr string) string {
	return fmt.Sprintf(`{"cniVersion":"1.1.0","interfaces":[{"name":"br0"},{"name":"veth0"},{"name":"eth0","sandbox":"/var/run/netns/x"}],
		"ips":[{"address":"%s/24","gateway":"10.66.0.1","interface":2}]}`, addr)
}

// pm builds portmap configs for one backend and state directory.
type pm struct{ backend, stateDir string }

func (p pm) conf(network, prev, mappings string) []byte {
	s := fmt.Sprintf(`{"cniVersion":"1.1.0","name":%q,"type":"portmap","backend":%q,"stateDir":%q,"runtimeConfig":{"portMappings":%s}`,
		network, p.backend, p.stateDir, mappings)
	if prev != "" {
		s += `,"prevResult":` + prev
	}
	return []byte(s + "}")
}

func TestPortmapBinary(t *testing.T) {
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) { testPortmapBinary(t, pm{backend, t.TempDir()}) })
	}
}

// dnatTo is how each backend spells a DNAT target in its listing.
func dnatTo(backend, ip string, port int) string {
	if backend == "iptables" {
		return fmt.Sprintf("--to-destination %s:%d", ip, port)
	}
	return fmt.Sprintf(": %s . %d", ip, port)
}

func testPortmapBinary(t *testing.T, p pm) {
	testenv.RequireRoot(t)
	conf := p.conf
	bin := testenv.Bin(t)
	host := hostWithBridge(t)

	call := func(cmd, id string, c []byte) ([]byte, error) {
		return host.Exec(bin, "portmap", testenv.Call{Command: cmd, ContainerID: id, Netns: "/var/run/netns/gone", IfName: "eth0", Conf: c})
	}
	web := `[{"hostPort":8080,"containerPort":80,"protocol":"tcp"},{"hostPort":8053,"containerPort":53,"protocol":"udp"}]`
	nat := func() string {
		return host.MustRun("iptables-save", "-t", "nat") + host.MustRun("nft", "list", "ruleset")
	}

	t.Run("ADD needs prevResult", func(t *testing.T) {
		_, err := call("ADD", "a", conf("net1", "", web))
		testenv.WantCode(t, err, 7, "needs a prevResult")
		if rules := nat(); strings.Contains(rules, "DNET-DN") || strings.Contains(rules, "net=net1") {
			t.Errorf("a refused ADD installed rules:\n%s", rules)
		}
	})

	t.Run("no mappings passes prevResult through", func(t *testing.T) {
		out, err := call("ADD", "a", conf("net1", prevResult("10.66.0.2"), `[]`))
		if err != nil {
			t.Fatal(err)
		}
		var res map[string]any
		_ = json.Unmarshal(out, &res)
		if ips, _ := res["ips"].([]any); len(ips) != 1 {
			t.Fatalf("prevResult not passed through: %s", out)
		}
	})

	t.Run("same container on two networks: DEL removes only its own", func(t *testing.T) {
		other := `[{"hostPort":9090,"containerPort":80,"protocol":"tcp"}]`
		if _, err := call("ADD", "shared-id", conf("net1", prevResult("10.66.0.2"), web)); err != nil {
			t.Fatal(err)
		}
		if _, err := call("ADD", "shared-id", conf("net2", prevResult("10.66.0.3"), other)); err != nil {
			t.Fatal(err)
		}
		if _, err := call("CHECK", "shared-id", conf("net1", prevResult("10.66.0.2"), web)); err != nil {
			t.Fatalf("CHECK: %v", err)
		}
		// DEL without prevResult and without mappings still finds its rules.
		if _, err := call("DEL", "shared-id", conf("net1", "", `[]`)); err != nil {
			t.Fatal(err)
		}
		rules := nat()
		if strings.Contains(rules, "10.66.0.2") || strings.Contains(rules, netfilter.Owner{Network: "net1", ContainerID: "shared-id", IfName: "eth0"}.Tag()) {
			t.Errorf("net1's rules survived DEL:\n%s", rules)
		}
		if !strings.Contains(rules, dnatTo(p.backend, "10.66.0.3", 80)) {
			t.Errorf("DEL on net1 removed net2's rules:\n%s", rules)
		}
		if _, err := call("CHECK", "shared-id", conf("net2", prevResult("10.66.0.3"), other)); err != nil {
			t.Errorf("CHECK of net2 after DEL of net1: %v", err)
		}
		if _, err := call("DEL", "shared-id", conf("net2", prevResult("10.66.0.3"), other)); err != nil {
			t.Fatal(err)
		}
		if _, err := call("DEL", "shared-id", conf("net2", prevResult("10.66.0.3"), other)); err != nil {
			t.Fatalf("second DEL: %v", err)
		}
		if rules := nat(); strings.Contains(rules, ":DNET-DN-") || strings.Contains(rules, "-A DNET-HOSTPORTS") || strings.Contains(rules, "id=shared-id") {
			t.Errorf("rules left after both DELs:\n%s", rules)
		}
	})

	t.Run("re-ADD replaces, never duplicates", func(t *testing.T) {
		c := conf("net1", prevResult("10.66.0.4"), web)
		for i := 0; i < 2; i++ {
			if _, err := call("ADD", "again", c); err != nil {
				t.Fatal(err)
			}
		}
		rules := nat()
		n := strings.Count(rules, "-A DNET-HOSTPORTS")
		if p.backend == "nftables" {
			n = strings.Count(rules, "id=again")
		}
		if n != 2 {
			t.Errorf("%d entries after two ADDs, want 2 (tcp + udp):\n%s", n, rules)
		}
		if _, err := call("DEL", "again", c); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("localhost mappings enable route_localnet on the bridge", func(t *testing.T) {
		if _, err := call("ADD", "lo", conf("net1", prevResult("10.66.0.5"), web)); err != nil {
			t.Fatal(err)
		}
		if v := strings.TrimSpace(host.MustRun("sysctl", "-n", "net.ipv4.conf.br0.route_localnet")); v != "1" {
			t.Errorf("route_localnet on br0 = %s", v)
		}
		if _, err := call("DEL", "lo", conf("net1", "", web)); err != nil {
			t.Fatal(err)
		}
	})
}

// A host port has one owner: a second container asking for it gets an
// error naming the first, and is left with nothing installed or claimed.
func TestNFTablesHostPortConflict(t *testing.T) {
	testenv.RequireRoot(t)
	p := pm{"nftables", t.TempDir()}
	bin := testenv.Bin(t)
	host := hostWithBridge(t)
	call := func(cmd, id, addr, ms string) error {
		_, err := host.Exec(bin, "portmap", testenv.Call{Command: cmd, ContainerID: id, Netns: "/x", IfName: "eth0",
			Conf: p.conf("net1", prevResult(addr), ms)})
		return err
	}
	web := `[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]`
	if err := call("ADD", "first-container", "10.66.0.2", web); err != nil {
		t.Fatal(err)
	}
	err := call("ADD", "second", "10.66.0.3", `[{"hostPort":9000,"containerPort":80,"protocol":"tcp"},{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]`)
	if err == nil || !strings.Contains(err.Error(), "8080/tcp on 0.0.0.0 is already published by container first-contai") || !strings.Contains(err.Error(), "(network net1)") {
		t.Fatalf("conflicting ADD: %v", err)
	}
	rules := host.MustRun("nft", "list", "ruleset")
	if strings.Contains(rules, "id=second") || strings.Contains(rules, "9000") {
		t.Errorf("the refused ADD left elements:\n%s", rules)
	}
	if recs, _ := filepath.Glob(filepath.Join(p.stateDir, "portmap", "*.json")); len(recs) != 1 {
		t.Errorf("records after the refused ADD: %v, want only the first container's", recs)
	}
	if claims, _ := filepath.Glob(filepath.Join(p.stateDir, "hostports", "*.json")); len(claims) != 1 {
		t.Errorf("claims after the refused ADD: %v, want only 8080/tcp", claims)
	}
	// The same port bound to one address overlaps it too.
	err = call("ADD", "local", "10.66.0.5", `[{"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":"127.0.0.1"}]`)
	if err == nil || !strings.Contains(err.Error(), "8080/tcp on 127.0.0.1 overlaps 8080/tcp on 0.0.0.0") {
		t.Fatalf("ADD of the port on 127.0.0.1: %v", err)
	}
	// The same port on another protocol is no conflict.
	if err := call("ADD", "third", "10.66.0.4", `[{"hostPort":8080,"containerPort":80,"protocol":"udp"}]`); err != nil {
		t.Fatalf("non-conflicting ADD: %v", err)
	}
}

// A DEL whose record was lost still removes the attachment's elements,
// found by the owner tag in their comments.
func TestDelWithoutRecord(t *testing.T) {
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			testenv.RequireRoot(t)
			p := pm{backend, t.TempDir()}
			bin := testenv.Bin(t)
			host := hostWithBridge(t)
			ms := `[{"hostPort":8080,"containerPort":80,"protocol":"tcp"},{"hostPort":8081,"containerPort":81,"protocol":"tcp","hostIP":"10.66.0.1"}]`
			call := func(cmd string) error {
				_, err := host.Exec(bin, "portmap", testenv.Call{Command: cmd, ContainerID: "lost", Netns: "/x", IfName: "eth0",
					Conf: p.conf("net1", prevResult("10.66.0.2"), ms)})
				return err
			}
			if err := call("ADD"); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(p.stateDir); err != nil {
				t.Fatal(err)
			}
			if err := call("DEL"); err != nil {
				t.Fatal(err)
			}
			rules := host.MustRun("iptables-save", "-t", "nat") + host.MustRun("nft", "list", "ruleset")
			if regexp.MustCompile(`id=lost|10\.66\.0\.2`).MatchString(rules) {
				t.Errorf("DEL without a record left rules:\n%s", rules)
			}
		})
	}
}

// hostWithBridge is a private host netns with the bridge and the route to
// the container subnet (10.66.0.0/24) that the bridge plugin would have made.
func hostWithBridge(t *testing.T) *testenv.NS {
	host := testenv.NewNS(t, testenv.Prefix()+"-host")
	host.MustRun("ip", "link", "add", "br0", "type", "bridge")
	host.MustRun("ip", "addr", "add", "10.66.0.1/24", "dev", "br0")
	host.MustRun("ip", "link", "set", "br0", "up")
	return host
}

func TestMain(m *testing.M) { testenv.Main(m) }

// STATUS answers 50 when the configured backend cannot run, and 51 when,
// besides, attachments' published ports depend on it.
func TestStatusCodes(t *testing.T) {
	testenv.RequireRoot(t)
	p := pm{"iptables", t.TempDir()}
	bin := testenv.Bin(t)
	host := testenv.NewNS(t, testenv.Prefix()+"-host")
	status := func() error {
		_, err := host.Exec(bin, "portmap", testenv.Call{Command: "STATUS", Conf: p.conf("net1", "", "[]")})
		return err
	}
	if err := status(); err != nil {
		t.Fatalf("STATUS with iptables present: %v", err)
	}
	// A PATH where ip is the only tool: no iptables for the plugin.
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(ipPath, filepath.Join(dir, "ip")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	testenv.WantCode(t, status(), 50, "iptables-save not found")
	rec := filepath.Join(p.stateDir, "portmap", "0123456789abcdef.json")
	if err := os.MkdirAll(filepath.Dir(rec), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rec, []byte(`{"Backend":"iptables","Specs":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	testenv.WantCode(t, status(), 51, "1 attachments' published ports depend on it")
	if err := os.Remove(rec); err != nil {
		t.Fatal(err)
	}
	// iptables there, but its nat table unreadable (no kernel support).
	for _, tool := range []string{"iptables-save", "iptables-restore"} {
		script := "#!/bin/sh\necho \"iptables: can't initialize iptables table 'nat'\" >&2\nexit 3\n"
		if err := os.WriteFile(filepath.Join(dir, tool), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WantCode(t, status(), 50, "cannot read the nat table")
}
