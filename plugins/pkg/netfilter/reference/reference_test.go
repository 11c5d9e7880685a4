package reference

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// The reference's nftables masquerade rule for one attachment, as its
// v1.10.0 writes it, is found by its comment and removed; another
// attachment's stays.
func TestRemoveReferenceMasqNFT(t *testing.T) {
	testenv.RequireRoot(t)
	host := testenv.NewNS(t, testenv.Prefix()+"-host")
	script := `table inet cni_plugins_masquerade {
	chain masq_checks {
		ip saddr 172.17.0.2 ip daddr != 172.17.0.0/16 masquerade comment "3a1d073d59b808ae-447941c6db121d32, net: docker0, if: eth0, id: dnt46f642-r1-id"
		ip saddr 172.17.0.3 ip daddr != 172.17.0.0/16 masquerade comment "3a1d073d59b808ae-8a70997f320ec6e4, net: docker0, if: eth0, id: dnt46f642-r2-id"
	}
}
`
	cmd := exec.Command("ip", "netns", "exec", host.Name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v %s", err, out)
	}
	err := ns.WithNetNSPath(host.Path(), func(ns.NetNS) error {
		return RemoveMasq(netfilter.IPv4, "docker0", "dnt46f642-r1-id", "eth0", netfilter.Options{})
	})
	if err != nil {
		t.Fatal(err)
	}
	out := host.MustRun("nft", "list", "table", "inet", "cni_plugins_masquerade")
	if strings.Contains(out, "r1-id") || !strings.Contains(out, "r2-id") {
		t.Errorf("after removing r1's masquerade:\n%s", out)
	}
}
