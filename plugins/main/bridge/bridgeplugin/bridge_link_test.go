package bridgeplugin

import (
	"net"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// primaryIPv4Is spares ensureGatewayAddr an address dump only when the
// answer is the one the dump would give.
func TestPrimaryIPv4Is(t *testing.T) {
	testenv.RequireRoot(t)
	host := testenv.NewNS(t, testenv.Prefix()+"-pri")
	host.MustRun("ip", "link", "add", "br9", "type", "bridge")
	host.MustRun("ip", "link", "add", "bare9", "type", "bridge")
	host.MustRun("ip", "addr", "add", "10.9.0.1/16", "dev", "br9")
	host.MustRun("ip", "addr", "add", "10.8.0.1/24", "dev", "br9") // secondary: another subnet
	cases := []struct {
		link, gw string
		want     bool
	}{
		{"br9", "10.9.0.1/16", true},
		{"br9", "10.9.0.1/24", false}, // same address, other prefix
		{"br9", "10.9.0.2/16", false},
		{"br9", "10.8.0.1/24", false}, // present, but not the primary: the slow path decides
		{"bare9", "10.9.0.1/16", false},
		{"nosuch9", "10.9.0.1/16", false},
	}
	err := ns.WithNetNSPath(host.Path(), func(ns.NetNS) error {
		for _, c := range cases {
			ip, ipn, _ := net.ParseCIDR(c.gw)
			gw := &net.IPNet{IP: ip, Mask: ipn.Mask}
			if got := primaryIPv4Is(c.link, gw); got != c.want {
				t.Errorf("primaryIPv4Is(%s, %s) = %v, want %v", c.link, c.gw, got, c.want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
