package loopbackplugin_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// The loopback binary brings lo up and reports its addresses, CHECK sees
// it up, DEL brings it down (and CHECK then says so), a DEL whose netns
// is gone succeeds, and a prevResult is passed on unchanged: the
// reference's behaviour, which containerd's CRI expects.
func TestLoopbackBinary(t *testing.T) {
	testenv.RequireRoot(t)
	bin := testenv.Bin(t)
	host := testenv.NewNS(t, testenv.Prefix()+"-host")
	ctr := testenv.NewNS(t, testenv.Prefix()+"-ctr")
	ctr.MustRun("ip", "link", "set", "lo", "down")
	conf := []byte(`{"cniVersion":"1.1.0","name":"lo","type":"loopback"}`)
	call := func(cmd string, conf []byte) ([]byte, error) {
		return host.Exec(bin, "loopback", testenv.Call{Command: cmd, ContainerID: "c1", Netns: ctr.Path(), IfName: "lo", Conf: conf})
	}
	out, err := call("ADD", conf)
	if err != nil {
		t.Fatalf("ADD: %v", err)
	}
	var r struct {
		Interfaces []struct{ Name, Sandbox string }
		IPs        []struct{ Address string }
	}
	if err := json.Unmarshal(out, &r); err != nil || len(r.Interfaces) != 1 || r.Interfaces[0].Name != "lo" || len(r.IPs) != 2 ||
		r.IPs[0].Address != "127.0.0.1/8" || r.IPs[1].Address != "::1/128" {
		t.Fatalf("ADD result: %s (%v)", out, err)
	}
	if link := ctr.MustRun("ip", "link", "show", "lo"); !strings.Contains(link, "UP") {
		t.Errorf("lo after ADD: %s", link)
	}
	if _, err := call("CHECK", conf); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if _, err := call("DEL", conf); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	_, err = call("CHECK", conf)
	testenv.WantCode(t, err, 999, "lo is down")

	prev := []byte(`{"cniVersion":"1.1.0","name":"lo","type":"loopback","prevResult":{"cniVersion":"1.1.0","ips":[{"address":"10.1.2.3/24"}]}}`)
	if out, err := call("ADD", prev); err != nil || !strings.Contains(string(out), "10.1.2.3/24") {
		t.Errorf("ADD with a prevResult: %s (%v)", out, err)
	}
	if out, err := host.Exec(bin, "loopback", testenv.Call{Command: "DEL", ContainerID: "c1", Netns: "/var/run/netns/gone", IfName: "lo", Conf: conf}); err != nil {
		t.Errorf("DEL with the netns gone: %v %s", err, out)
	}
}

func TestMain(m *testing.M) { testenv.Main(m) }
