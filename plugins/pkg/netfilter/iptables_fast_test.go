package netfilter

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// The iptables backend reads the table (iptables-save, which grows with the
// number of containers) only when its fast transaction is refused: the first
// ADD on a host, a re-ADD, a DEL without a record.
func TestIPTablesFastPath(t *testing.T) {
	testenv.RequireRoot(t)
	host := testenv.NewNS(t, testenv.Prefix()+"-host")
	LockPath = filepath.Join(t.TempDir(), "lock")
	b, err := newIPTables(IPv4)
	if err != nil {
		t.Fatal(err)
	}
	owner := func(id string) Owner { return Owner{Network: "net", ContainerID: id, IfName: "eth0"} }
	pm := func(id, ip string, port int) PortMapSpec {
		return PortMapSpec{Owner: owner(id), ContainerIP: net.ParseIP(ip), ContainerNet: cidr("172.17.0.0/16"),
			SNAT: true, MarkBit: DefaultMarkBit, Mappings: []PortMapping{{HostPort: port, ContainerPort: 80, Protocol: "tcp"}}}
	}
	masq := func(id, ip string) MasqSpec {
		return MasqSpec{Owner: owner(id), IP: net.ParseIP(ip), Bridge: "docker0"}
	}
	steps := []struct {
		name      string
		do        func() error
		snapshots int64 // iptables-save runs the step may take
	}{
		{"first portmap ADD builds the base", func() error { return b.AddPortMappings(pm("a", "172.17.0.2", 8080)) }, 1},
		{"second portmap ADD", func() error { return b.AddPortMappings(pm("b", "172.17.0.3", 8081)) }, 0},
		{"ADD after the PREROUTING jump was deleted restores it", func() error {
			host.MustRun(append([]string{"iptables", "-t", "nat", "-D", "PREROUTING"}, portmapBaseJumps()[0].rule()...)...)
			return b.AddPortMappings(pm("c", "172.17.0.5", 8082))
		}, 1},
		{"DEL of c from its record", func() error { return b.DelPortMappings(pm("c", "172.17.0.5", 8082)) }, 0},
		{"re-ADD of b replaces", func() error { return b.AddPortMappings(pm("b", "172.17.0.4", 8081)) }, 1},
		{"DEL of b from its record", func() error { return b.DelPortMappings(pm("b", "172.17.0.4", 8081)) }, 0},
		{"DEL of a without a record", func() error { return b.DelPortMappings(PortMapSpec{Owner: owner("a")}) }, 1},
		{"DEL of a again", func() error { return b.DelPortMappings(pm("a", "172.17.0.2", 8080)) }, 1},
		{"first masquerade builds its jump", func() error { return b.AddMasquerade(masq("a", "172.17.0.2")) }, 1},
		{"second masquerade", func() error { return b.AddMasquerade(masq("b", "172.17.0.3")) }, 0},
		{"masquerade DEL from the record", func() error { return b.DelMasquerade(masq("b", "172.17.0.3")) }, 0},
		{"masquerade DEL without a record", func() error { return b.DelMasquerade(MasqSpec{Owner: owner("a")}) }, 1},
	}
	err = ns.WithNetNSPath(host.Path(), func(ns.NetNS) error {
		for _, s := range steps {
			before := snapshots.Load()
			if err := s.do(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			if got := snapshots.Load() - before; got != s.snapshots {
				t.Errorf("%s: %d iptables-save runs, want %d", s.name, got, s.snapshots)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("iptables is nf_tables-backed: %v", b.nftBacked)
	if b.nftBacked {
		// The fast path's netlink reading of the base agrees with iptables.
		_ = ns.WithNetNSPath(host.Path(), func(ns.NetNS) error {
			if !b.basePresent(append(portmapBaseJumps(), masqBaseJumps()...), DefaultMarkBit) {
				t.Error("basePresent: false for the base every ADD built")
			}
			if b.basePresent(portmapBaseJumps(), DefaultMarkBit+1) {
				t.Error("basePresent: true for a mark bit nothing masquerades")
			}
			if b.basePresent([]baseJump{{"PREROUTING", nil, "DNET-NOPE"}}, -1) {
				t.Error("basePresent: true for a jump nothing makes")
			}
			return nil
		})
	}
	saved := host.MustRun("iptables-save", "-t", "nat")
	for _, id := range []string{"id=a ", "id=b ", "id=c "} {
		if strings.Contains(saved, id) {
			t.Errorf("rules of %s left behind:\n%s", id, saved)
		}
	}
	for _, base := range []string{"-j DNET-HOSTPORTS", "-j DNET-POSTROUTING", "-j DNET-MASQ", "--mark 0x2000/0x2000 -j MASQUERADE"} {
		if !strings.Contains(saved, base) {
			t.Errorf("base rule %q missing:\n%s", base, saved)
		}
	}
}
