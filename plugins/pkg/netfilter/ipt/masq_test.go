package ipt

import (
	"net"
	"strings"
	"testing"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/testenv/golden"
)

// A network's masquerade names the network and subnet, never a container:
// the second container of a network adds nothing.
func TestMasqNetworkRuleGolden(t *testing.T) {
	txn := &ruleTxn{table: "nat"}
	ensureBase(txn, parseSnapshot("", "nat"), masqBase())
	for _, spec := range []netfilter.MasqSpec{
		{Owner: testOwner, IP: net.ParseIP("172.17.0.2"), Bridge: "docker0", Subnet: cidr("172.17.0.0/16")},
		{Owner: testOwner, IP: net.ParseIP("fd00::2"), Bridge: "docker0", Subnet: cidr("fd00::/64")},
		{Owner: testOwner, IP: net.ParseIP("10.244.1.2"), Bridge: "cni0", Subnet: cidr("10.244.1.0/24"), Except: []*net.IPNet{cidr("10.244.0.0/16")}},
	} {
		txn.addAll(ChainMasq, masqNetRules(spec, netfilter.FamilyOf(spec.IP)))
	}
	golden.Check(t, "masq-network", txn.render())
	if strings.Contains(txn.render(), testOwner.Marker()) {
		t.Errorf("a network's masquerade names a container:\n%s", txn.render())
	}
}

// The rules of a network's subnet are found whatever their exceptions
// (a changed nonMasqueradeCIDRs replaces them), and only theirs: not a
// subnet the first is a prefix of as text, nor another bridge's.
func TestMasqNetworkSaved(t *testing.T) {
	spec := netfilter.MasqSpec{IP: net.ParseIP("10.1.0.2"), Bridge: "br0", Subnet: cidr("10.1.0.0/1")}
	old := spec
	old.Except = []*net.IPNet{cidr("10.9.0.0/16")}
	other := spec
	other.Subnet = cidr("10.1.0.0/16")
	elsewhere := spec
	elsewhere.Bridge = "br1"
	var saved strings.Builder
	saved.WriteString("*nat\n:DNET-MASQ - [0:0]\n")
	for _, s := range []netfilter.MasqSpec{old, other, elsewhere} {
		txn := &ruleTxn{table: "nat"}
		txn.addAll(ChainMasq, masqNetRules(s, netfilter.IPv4))
		for _, l := range txn.lines { // as iptables-save prints them
			saved.WriteString(l + "\n")
		}
	}
	saved.WriteString("COMMIT\n")
	snap := parseSnapshot(saved.String(), "nat")
	got := masqNetSaved(snap, spec)
	if len(got) != 2 {
		t.Fatalf("found %d rules of br0's 10.1.0.0/1, want its old 2 (a RETURN and the MASQUERADE):\n%s", len(got), strings.Join(got, "\n"))
	}
	for _, r := range got {
		if !strings.Contains(r, "except=") {
			t.Errorf("found another subnet's or bridge's rule: %s", r)
		}
	}
	if err := checkMasqNetwork(snap, old, netfilter.IPv4); err != nil {
		t.Errorf("the old rules are complete for the old settings: %v", err)
	}
	if err := checkMasqNetwork(snap, spec, netfilter.IPv4); err == nil {
		t.Error("the new settings' rules are missing, and the check passed")
	}
}
