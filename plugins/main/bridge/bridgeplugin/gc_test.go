package bridgeplugin

import (
	"testing"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

func TestHashNamed(t *testing.T) {
	o := netfilter.Owner{Network: "docker0", ContainerID: "3f2a", IfName: "eth0"}
	for _, tc := range []struct {
		name, prefix string
		want         bool
	}{
		{o.HostVeth(), netfilter.VethPrefix, true},
		{retiredName(o), retiredPrefix, true},
		{retiredName(o), "veth", false},
		{o.HostVeth(), retiredPrefix, false},
		{"veth0123456789", "veth", true},
		{"veth012345678", "veth", false},   // one digit short
		{"veth0123456789a", "veth", false}, // one too many
		{"vethABCDEF0123", "veth", false},  // upper case: not how a tag is written
		{"veth012345678g", "veth", false},  // not hex
		{"eth0", "veth", false},
	} {
		if got := hashNamed(tc.name, tc.prefix); got != tc.want {
			t.Errorf("hashNamed(%q, %q) = %v, want %v", tc.name, tc.prefix, got, tc.want)
		}
	}
}
