package ipt

import (
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"

	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// countSaves puts an iptables-save on PATH that counts its runs in a file
// and runs the real one; the count reads how often the backend snapshotted.
func countSaves(t *testing.T) func() int {
	real, err := exec.LookPath("iptables-save")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	script := fmt.Sprintf("#!/bin/sh\necho >> %s\nexec %s \"$@\"\n", count, real)
	if err := os.WriteFile(filepath.Join(dir, "iptables-save"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	return func() int {
		data, _ := os.ReadFile(count)
		return strings.Count(string(data), "\n")
	}
}

// The iptables backend reads the table (iptables-save, which grows with the
// number of containers) only when its fast transaction is refused: the first
// ADD on a host, a re-ADD, a DEL without a record.
func TestIPTablesFastPath(t *testing.T) {
	testenv.RequireRoot(t)
	host := testenv.NewNS(t, testenv.Prefix()+"-host")
	saves := countSaves(t)
	b, err := New(netfilter.IPv4, netfilter.Options{LockPath: filepath.Join(t.TempDir(), "lock")})
	if err != nil {
		t.Fatal(err)
	}
	owner := func(id string) netfilter.Owner {
		return netfilter.Owner{Network: "net", ContainerID: id, IfName: "eth0"}
	}
	pm := func(id, ip string, port int) netfilter.PortMapSpec {
		return netfilter.PortMapSpec{Owner: owner(id), ContainerIP: net.ParseIP(ip), ContainerNet: cidr("172.17.0.0/16"),
			SNAT: true, MarkBit: netfilter.DefaultMarkBit, Mappings: []netfilter.PortMapping{{HostPort: port, ContainerPort: 80, Protocol: "tcp"}}}
	}
	masq := func(id, ip string) netfilter.MasqSpec {
		return netfilter.MasqSpec{Owner: owner(id), IP: net.ParseIP(ip), Bridge: "docker0"}
	}
	steps := []struct {
		name      string
		do        func() error
		snapshots int // iptables-save runs the step may take
	}{
		{"first portmap ADD builds the base", func() error { return b.addPortMappings(pm("a", "172.17.0.2", 8080)) }, 1},
		{"second portmap ADD", func() error { return b.addPortMappings(pm("b", "172.17.0.3", 8081)) }, 0},
		{"ADD after the PREROUTING jump was deleted restores it", func() error {
			jump := portmapBase(pm("c", "172.17.0.5", 8082)).rules()[0]
			host.MustRun(append([]string{"iptables", "-t", "nat", "-D", jump.chain}, jump.args...)...)
			return b.addPortMappings(pm("c", "172.17.0.5", 8082))
		}, 1},
		{"DEL of c from its record", func() error { return b.delPortMappings(pm("c", "172.17.0.5", 8082)) }, 0},
		{"re-ADD of b replaces", func() error { return b.addPortMappings(pm("b", "172.17.0.4", 8081)) }, 1},
		{"DEL of b from its record", func() error { return b.delPortMappings(pm("b", "172.17.0.4", 8081)) }, 0},
		{"DEL of a without a record", func() error { return b.delPortMappings(netfilter.PortMapSpec{Owner: owner("a")}) }, 1},
		{"DEL of a again", func() error { return b.delPortMappings(pm("a", "172.17.0.2", 8080)) }, 1},
		{"first masquerade builds its jump", func() error { return b.addMasquerade(masq("a", "172.17.0.2")) }, 1},
		{"second masquerade", func() error { return b.addMasquerade(masq("b", "172.17.0.3")) }, 0},
		{"masquerade DEL from the record", func() error { return b.delMasquerade(masq("b", "172.17.0.3")) }, 0},
		{"masquerade DEL without a record", func() error { return b.delMasquerade(netfilter.MasqSpec{Owner: owner("a")}) }, 1},
	}
	err = ns.WithNetNSPath(host.Path(), func(ns.NetNS) error {
		for _, s := range steps {
			before := saves()
			if err := s.do(); err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			if got := saves() - before; got != s.snapshots {
				t.Errorf("%s: %d iptables-save runs, want %d", s.name, got, s.snapshots)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("iptables is nf_tables-backed: %v", b.nftBacked)
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

// nftHasBase reads what real iptables-nft stored: it finds the base that
// ensureBase writes, and nothing less or different.
func TestNFTProbeAgainstIPTablesNFT(t *testing.T) {
	testenv.RequireRoot(t)
	if _, err := exec.LookPath("iptables-nft-restore"); err != nil {
		t.Fatalf("iptables-nft-restore: %v (scripts/install-deps.sh installs iptables)", err)
	}
	spec := netfilter.PortMapSpec{SNAT: true, MarkBit: netfilter.DefaultMarkBit}
	full := natBase{jumps: append(portmapBase(spec).jumps, masqBase().jumps...), markBit: netfilter.DefaultMarkBit}
	cases := []struct {
		name  string
		extra string // iptables-nft-restore lines after the base
		skip  int    // index of a base rule left out, or -1
		bit   int    // mark bit asked about
		want  bool
	}{
		{"the base as written", "", -1, netfilter.DefaultMarkBit, true},
		{"no PREROUTING jump", "", 0, netfilter.DefaultMarkBit, false},
		{"no POSTROUTING jump to DNET-MASQ", "", 3, netfilter.DefaultMarkBit, false},
		{"another mark bit", "", -1, netfilter.DefaultMarkBit + 1, false},
		{"no mark rule", "", 4, netfilter.DefaultMarkBit, false},
		{"the mark accepted, not masqueraded", "-A DNET-POSTROUTING -m mark --mark 0x4000/0x4000 -j ACCEPT\n", -1, netfilter.DefaultMarkBit + 1, false},
		{"a jump with a different name", "-N DNET-MASQX\n-A POSTROUTING -j DNET-MASQX\n", 3, netfilter.DefaultMarkBit, false},
		{"another's ACCEPT before the POSTROUTING jumps", "-I POSTROUTING 1 -s 10.77.0.0/24 -j ACCEPT\n", -1, netfilter.DefaultMarkBit, false},
		{"another's ACCEPT after them", "-A POSTROUTING -s 10.77.0.0/24 -j ACCEPT\n", -1, netfilter.DefaultMarkBit, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			host := testenv.NewNS(t, testenv.Prefix()+"-host")
			var in strings.Builder
			in.WriteString("*nat\n:DNET-HOSTPORTS - [0:0]\n:DNET-POSTROUTING - [0:0]\n:DNET-MASQ - [0:0]\n")
			for i, r := range full.rules() {
				if i != c.skip {
					in.WriteString("-A " + r.chain + " " + joinArgs(r.args) + "\n")
				}
			}
			in.WriteString(c.extra + "COMMIT\n")
			cmd := exec.Command("ip", "netns", "exec", host.Name, "iptables-nft-restore", "--noflush")
			cmd.Stdin = strings.NewReader(in.String())
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("iptables-nft-restore: %v\n%s\n%s", err, out, in.String())
			}
			asked := natBase{jumps: full.jumps, markBit: c.bit}
			var got bool
			_ = ns.WithNetNSPath(host.Path(), func(ns.NetNS) error { got = nftHasBase(netfilter.IPv4, asked); return nil })
			if got != c.want {
				t.Errorf("nftHasBase = %v, want %v, for:\n%s", got, c.want, host.MustRun("nft", "list", "table", "ip", "nat"))
			}
		})
	}
	if nftBacked("/bin/true") {
		t.Error("nftBacked(/bin/true): a binary that is not iptables-nft must take the -C path")
	}
}

// nftHasLoopbackDrop finds the raw loopback drop as iptables-nft stores
// it, and nothing else.
func TestNFTProbeLoopbackDrop(t *testing.T) {
	testenv.RequireRoot(t)
	host := testenv.NewNS(t, testenv.Prefix()+"-host")
	probe := func() (got bool) {
		_ = ns.WithNetNSPath(host.Path(), func(ns.NetNS) error { got = nftHasLoopbackDrop(netfilter.IPv4); return nil })
		return got
	}
	if probe() {
		t.Error("found a loopback drop on an empty host")
	}
	host.MustRun("iptables-nft", "-t", "raw", "-I", "PREROUTING", "-d", "127.0.0.0/8", "!", "-i", "lo", "-m", "comment", "--comment", "dnet:base", "-j", "ACCEPT")
	if probe() {
		t.Error("took an ACCEPT for the drop")
	}
	r := loopbackDrop(netfilter.IPv4)
	host.MustRun(append([]string{"iptables-nft", "-t", "raw", "-I", r.chain}, r.args...)...)
	if !probe() {
		t.Errorf("missed the drop:\n%s", host.MustRun("nft", "list", "table", "ip", "raw"))
	}
}
