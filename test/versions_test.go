package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// allVersions are the cniVersions the reference plugins accept: ours
// accept them all.
var allVersions = version.All.SupportedVersions()

// checks says whether the spec of version v has CHECK (0.4.0 on).
func checks(v string) bool {
	ok, _ := version.GreaterThanOrEqualTo(v, "0.4.0")
	return ok
}

// TestSpecVersions: every cniVersion the reference accepts (0.1.0–1.1.0)
// round-trips through the shipped chain (bridge, host-local, portmap):
// each result comes back in the version asked for, the published port
// answers, CHECK passes where the spec has it, and DEL leaves nothing.
// On a host whose forwarding is on already, as on any Docker host, none
// of it writes a line to stderr, with the backend named or picked.
func TestSpecVersions(t *testing.T) {
	for _, backend := range append([]string{""}, backends...) {
		name := backend
		if name == "" {
			name = "automatic"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testSpecVersions(t, newWorld(t, backend))
		})
	}
}

func testSpecVersions(t *testing.T, w *world) {
	w.host.MustRun("sysctl", "-qw", "net.ipv4.ip_forward=1")
	var stderr bytes.Buffer
	for i, v := range allVersions {
		c := w.newContainer(fmt.Sprintf("v%d", i))
		d := w.libcni(v)
		d.exec.Stderr = &stderr
		ms := both(8200+i, "")
		res, err := d.add(c, ms)
		if err != nil {
			t.Fatalf("%s ADD: %v", v, err)
		}
		if res.Version() != v {
			t.Errorf("%s ADD: result version %s", v, res.Version())
		}
		cur, err := current.NewResultFromResult(res)
		if err != nil || len(cur.IPs) != 1 {
			t.Fatalf("%s ADD: result %v (%v)", v, res, err)
		}
		ip := cur.IPs[0].Address.IP.String()
		w.waitServing(c, ip)
		w.mustReach(w.client, "tcp", hostAddr, 8200+i)
		if checks(v) {
			if err := d.check(c, ms); err != nil {
				t.Errorf("%s CHECK: %v", v, err)
			}
		}
		if err := d.del(c, ms); err != nil {
			t.Fatalf("%s DEL: %v", v, err)
		}
		w.assertGone(c, ip, []int{8200 + i})
	}
	if left, _ := filepath.Glob(filepath.Join(w.ipamDir(), netName, "172.*")); len(left) != 0 {
		t.Errorf("reservations left: %v", left)
	}
	if stderr.Len() > 0 {
		t.Errorf("successful ADD, CHECK and DEL wrote to stderr, with nothing on the host to report:\n%s", stderr.String())
	}
}

// TestSingleVersions: loopback and host-local, called alone as runtimes
// and other plugins call them, at every cniVersion: the result in the
// version asked for, CHECK where the spec has it, DEL, and not a line on
// stderr.
func TestSingleVersions(t *testing.T) {
	testenv.RequireRoot(t)
	bin := testenv.Bin(t)
	host := testenv.NewNS(t, testenv.Prefix()+"-host")
	dir := t.TempDir()
	var stderr bytes.Buffer
	call := func(plugin string, ctr *testenv.NS, cmd string, conf []byte) ([]byte, error) {
		ifName := "eth0"
		if plugin == "loopback" {
			ifName = "lo"
		}
		env := []string{"CNI_COMMAND=" + cmd, "CNI_CONTAINERID=c-" + plugin, "CNI_NETNS=" + ctr.Path(), "CNI_IFNAME=" + ifName, "CNI_PATH=" + bin}
		exec := testenv.NetnsExec(host.Name, nil)
		exec.Stderr = &stderr
		return exec.ExecPlugin(t.Context(), filepath.Join(bin, plugin), conf, append(os.Environ(), env...))
	}
	for _, v := range allVersions {
		t.Run(v, func(t *testing.T) {
			ctr := testenv.NewNS(t, testenv.Prefix()+"-ctr")
			confs := map[string]string{
				"loopback":   fmt.Sprintf(`{"cniVersion":%q,"name":"lo","type":"loopback"}`, v),
				"host-local": fmt.Sprintf(`{"cniVersion":%q,"name":"hl","ipam":{"type":"host-local","dataDir":%q,"subnet":"10.99.0.0/24"}}`, v, dir),
			}
			for _, plugin := range []string{"loopback", "host-local"} {
				conf := []byte(confs[plugin])
				out, err := call(plugin, ctr, "ADD", conf)
				if err != nil {
					t.Fatalf("%s ADD: %v", plugin, err)
				}
				res, err := version.NewResult(v, out)
				if err != nil {
					t.Fatalf("%s ADD: result %s does not parse as %s: %v", plugin, out, v, err)
				}
				var said struct{ CNIVersion string }
				if json.Unmarshal(out, &said); res.Version() != v || said.CNIVersion != v {
					t.Errorf("%s ADD: result %s, want version %s", plugin, out, v)
				}
				if checks(v) {
					if _, err := call(plugin, ctr, "CHECK", conf); err != nil {
						t.Errorf("%s CHECK: %v", plugin, err)
					}
				}
				if _, err := call(plugin, ctr, "DEL", conf); err != nil {
					t.Errorf("%s DEL: %v", plugin, err)
				}
			}
			if left, _ := filepath.Glob(filepath.Join(dir, "hl", "10.*")); len(left) != 0 {
				t.Errorf("host-local reservations left: %v", left)
			}
		})
	}
	if stderr.Len() > 0 {
		t.Errorf("successful calls wrote to stderr:\n%s", stderr.String())
	}
}

// TestReferenceCallsOurIPAM: the reference's bridge and ptp, with our
// host-local as their IPAM, at the old cniVersions (0.1.0, 0.2.0) as well
// as the current one: ADD gives the container its address, DEL releases
// it. Before, our host-local refused 0.1.0 and 0.2.0 and so did their ADD
// and DEL.
func TestReferenceCallsOurIPAM(t *testing.T) {
	testenv.RequireRoot(t)
	bin := testenv.Bin(t)
	mixed := t.TempDir()
	for _, p := range []struct{ name, path string }{
		{"bridge", refPlugin(t, "bridge")}, {"ptp", refPlugin(t, "ptp")}, {"host-local", filepath.Join(bin, "host-local")},
	} {
		if err := os.Symlink(p.path, filepath.Join(mixed, p.name)); err != nil {
			t.Fatal(err)
		}
	}
	host := testenv.NewNS(t, testenv.Prefix()+"-host")
	dir := t.TempDir()
	for i, v := range []string{"0.1.0", "0.2.0", "1.0.0"} {
		for j, plugin := range []string{"bridge", "ptp"} {
			t.Run(plugin+"-"+v, func(t *testing.T) {
				ctr := testenv.NewNS(t, testenv.Prefix()+"-ctr")
				subnet := fmt.Sprintf("10.98.%d.0/24", 10*i+j)
				conf, _ := json.Marshal(map[string]any{
					"cniVersion": v, "name": fmt.Sprintf("mix%d%d", i, j), "type": plugin, "bridge": fmt.Sprintf("dntmix%d%d", i, j), "isGateway": true,
					"ipam": map[string]any{"type": "host-local", "dataDir": dir, "subnet": subnet},
				})
				call := testenv.Call{ContainerID: "c1", Netns: ctr.Path(), IfName: "eth0", Conf: conf}
				call.Command = "ADD"
				out, err := host.Exec(mixed, plugin, call)
				if err != nil {
					t.Fatalf("reference %s ADD with our host-local: %v", plugin, err)
				}
				res, err := version.NewResult(v, out)
				if err != nil {
					t.Fatalf("result %s: %v", out, err)
				}
				cur, err := current.NewResultFromResult(res)
				if err != nil || len(cur.IPs) != 1 {
					t.Fatalf("result %s (%v)", out, err)
				}
				if addrs := ctr.MustRun("ip", "-4", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(addrs, cur.IPs[0].Address.String()) {
					t.Errorf("the container has %q, the result says %s", addrs, cur.IPs[0].Address.String())
				}
				call.Command = "DEL"
				if _, err := host.Exec(mixed, plugin, call); err != nil {
					t.Fatalf("reference %s DEL with our host-local: %v", plugin, err)
				}
				if left, _ := filepath.Glob(filepath.Join(dir, fmt.Sprintf("mix%d%d", i, j), "10.*")); len(left) != 0 {
					t.Errorf("reservations left: %v", left)
				}
			})
		}
	}
}
