package attachment

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter/host"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter/nft/nftfake"
	"github.com/dockernet/cni-plugins/plugins/pkg/state"
)

func fwdRecord(o netfilter.Owner, bridge string, ips ...string) Record[netfilter.ForwardSpec] {
	rec := Record[netfilter.ForwardSpec]{Backend: "nftables"}
	for _, ip := range ips {
		rec.Specs = append(rec.Specs, netfilter.ForwardSpec{Owner: o, IP: net.ParseIP(ip), Bridge: bridge})
	}
	return rec
}

func networkRecorded(t *testing.T, env Env, bridge string) bool {
	t.Helper()
	_, err := os.Stat(env.networkDir(bridge))
	return err == nil
}

// The network's own state goes with its last attachment, whichever way
// that goes, and never while one is left.
func TestNetworkGoesWithItsLastAttachment(t *testing.T) {
	o2 := netfilter.Owner{Network: "net", ContainerID: "c2", IfName: "eth0"}
	for _, tc := range []struct {
		name   string
		remove func(env Env, o netfilter.Owner) error
	}{
		{"DEL", func(env Env, o netfilter.Owner) error {
			return remove(env, Forwarding, o, netfilter.ForwardSpec{Owner: o}, nil)
		}},
		{"DEL without a record", func(env Env, o netfilter.Owner) error {
			if err := env.Store.Remove(Forwarding.Name, o.Tag()); err != nil {
				return err
			}
			return remove(env, Forwarding, o, netfilter.ForwardSpec{Owner: o}, []netfilter.Family{netfilter.IPv4})
		}},
		{"GC", func(env Env, o netfilter.Owner) error {
			keep := map[string]bool{owner.Tag(): true, o2.Tag(): true}
			delete(keep, o.Tag())
			return Collect(env, "bridge", "net", keep, Forwarding)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, h := newEnv(t)
			for _, o := range []netfilter.Owner{owner, o2} {
				if err := install(env, Forwarding, o, fwdRecord(o, "br0", "10.0.0.2", "fd00::2")); err != nil {
					t.Fatal(err)
				}
			}
			h.calls = nil
			if err := tc.remove(env, owner); err != nil {
				t.Fatal(err)
			}
			for _, c := range h.calls {
				if strings.Contains(c, "del-network") {
					t.Fatalf("the network's state went with a member left: %v", h.calls)
				}
			}
			if !networkRecorded(t, env, "br0") {
				t.Fatal("network record gone with a member left")
			}
			h.calls = nil
			if err := tc.remove(env, o2); err != nil {
				t.Fatal(err)
			}
			var dels []string
			for _, c := range h.calls {
				if strings.Contains(c, "del-network") {
					dels = append(dels, c)
				}
			}
			if len(dels) != 2 {
				t.Errorf("del-network calls %v, want one per family through the recorded backend", dels)
			}
			if networkRecorded(t, env, "br0") {
				t.Error("network record left after its last attachment")
			}
		})
	}
}

// A failed ADD leaves no member; the network it would have joined goes
// at the next look, as does one a crash left without members.
func TestNetworkWithoutMembersIsCollected(t *testing.T) {
	env, h := newEnv(t)
	h.failOn["nftables IPv4 add-fwd 10.0.0.2"] = true
	if err := install(env, Forwarding, owner, fwdRecord(owner, "br0", "10.0.0.2")); err == nil {
		t.Fatal("install succeeded, want the refused commit's error")
	}
	if env.hasMembers("br0") {
		t.Fatal("a failed ADD left its membership")
	}
	if networkRecorded(t, env, "br0") {
		t.Fatal("a failed ADD left the network it joined")
	}
	// What a crash between the last member's removal and the network's leaves.
	rec := NetworkRecord{Version: NetworkVersion, Bridge: "br0", Backend: "nftables", Families: []netfilter.Family{netfilter.IPv4}}
	if err := env.Store.Save(filepath.Join(NetworkFolder, "br0"), "forward", rec); err != nil {
		t.Fatal(err)
	}
	h.calls = nil
	if err := env.CollectNetworks(); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, h, "nftables IPv4 del-network br0 <nil>")
	if networkRecorded(t, env, "br0") {
		t.Error("network record left")
	}
}

// A re-ADD onto another bridge moves the membership: the old network
// goes once nothing else holds it.
func TestReAddMovesMembership(t *testing.T) {
	env, _ := newEnv(t)
	if err := install(env, Forwarding, owner, fwdRecord(owner, "br0", "10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	if err := install(env, Forwarding, owner, fwdRecord(owner, "br1", "10.1.0.2")); err != nil {
		t.Fatal(err)
	}
	if networkRecorded(t, env, "br0") || !env.hasMembers("br1") {
		t.Errorf("br0 recorded %v, br1 has members %v: want the membership moved", networkRecorded(t, env, "br0"), env.hasMembers("br1"))
	}
}

// copyTestdata puts the records of testdata/<dir> into env's store.
func copyTestdata(t *testing.T, env Env, dir string) {
	t.Helper()
	err := filepath.WalkDir(filepath.Join("testdata", dir), func(p string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join("testdata", dir), p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(env.Store.Dir, filepath.Dir(rel)), 0o700); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(env.Store.Dir, rel), data, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testdata/v0 is every record the last release before versions wrote
// for one attachment (nftables, IPv4, a published port, forwarding
// turned on by the bridge). They load, and their network is adopted:
// an attachment added after the upgrade to the same bridge finds the old
// one a member, so its DEL leaves the network's state for the old one;
// the old one's DEL then removes it.
func TestRecordsOfVersion0(t *testing.T) {
	env, h := newEnv(t)
	copyTestdata(t, env, "v0")
	old := netfilter.Owner{Network: "legacy", ContainerID: "cnitool-c233157ed8a2c4907c3e", IfName: "eth0"}
	all, err := All(env)
	if err != nil || len(all[old.Tag()]) != 3 {
		t.Fatalf("v0 records load as %v, %v: want masq, forward and portmap", all[old.Tag()], err)
	}
	var link Link
	if found, err := env.Store.Load(LinkKind, old.Tag(), &link); !found || err != nil || !link.Intact(old.Tag()) || link.IPAM != nil {
		t.Fatalf("v0 link record: %+v %v %v", link, found, err)
	}
	fwd, found, err := env.Forwarding()
	if !found || err != nil || fwd.Families[netfilter.IPv4].Was != "0" || len(fwd.Guards("nftables")) != 1 {
		t.Fatalf("v0 forwarding record: %+v %v %v", fwd, found, err)
	}
	fresh := netfilter.Owner{Network: "legacy", ContainerID: "new", IfName: "eth0"}
	if err := install(env, Forwarding, fresh, fwdRecord(fresh, "br-legacy", "10.88.0.3")); err != nil {
		t.Fatal(err)
	}
	if err := remove(env, Forwarding, fresh, netfilter.ForwardSpec{Owner: fresh}, nil); err != nil {
		t.Fatal(err)
	}
	h.calls = nil
	if !env.hasMembers("br-legacy") {
		t.Fatal("the v0 attachment is not a member of its network")
	}
	for _, k := range Kinds {
		st, found, err := k.Stored(env, old.Tag())
		if err != nil || !found {
			t.Fatal(k.Folder(), found, err)
		}
		c := env.Begin("test")
		st.Remove(c)
		if err := c.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if networkRecorded(t, env, "br-legacy") {
		t.Errorf("the network outlives its last (v0) attachment; calls %v", h.calls)
	}
}

// A record of a later format is reported, never guessed at.
func TestRecordOfNewerVersion(t *testing.T) {
	env, _ := newEnv(t)
	rec := fwdRecord(owner, "br0", "10.0.0.2")
	rec.Version = RecordVersion + 1
	if err := env.Store.Save(Forwarding.Name, owner.Tag(), rec); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Forwarding.Recorded(env, owner); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("loading a record of version %d: %v, want an error saying it is newer", rec.Version, err)
	}
}

// The three levels on the real nftables backend over the fake kernel:
// two attachments publish ports on br0; the first one's DEL leaves the
// bridge's hairpin_ifs element for the other, the last one's removes it,
// and nothing of either is left in the table or the store.
func TestNetworkLifecycleOnFakeKernel(t *testing.T) {
	k := nftfake.New()
	env := Env{Store: state.New(t.TempDir()), Backends: host.Fake{Kernel: k}}
	owners := []netfilter.Owner{owner, {Network: "net", ContainerID: "c2", IfName: "eth0"}}
	for i, o := range owners {
		ip := net.ParseIP(fmt.Sprintf("10.0.0.%d", i+2)).To4()
		c := env.Begin("test")
		Forwarding.Install(c, o, Record[netfilter.ForwardSpec]{Backend: "nftables", Specs: []netfilter.ForwardSpec{{Owner: o, IP: ip, Bridge: "br0", Protect: true}}})
		PortMappings.Install(c, o, Record[netfilter.PortMapSpec]{Backend: "nftables", Specs: []netfilter.PortMapSpec{{
			Owner: o, ContainerIP: ip, ContainerNet: &net.IPNet{IP: net.IPv4(10, 0, 0, 0).To4(), Mask: net.CIDRMask(24, 32)},
			SNAT: true, MarkBit: netfilter.DefaultMarkBit, HairpinIf: "br0",
			Mappings: []netfilter.PortMapping{{HostPort: 8080 + i, ContainerPort: 80, Protocol: "tcp"}}}}})
		if err := c.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	// hairpin_ifs' element: "br0" as an ifname key, tagged as base.
	const br0 = `62723000000000000000000000000000 "dnet:base"`
	hairpin := func() bool { return strings.Contains(k.Render(byte(netfilter.IPv4.NFT()), "dnet"), br0) }
	if !hairpin() {
		t.Fatalf("no hairpin_ifs element for br0 after ADD:\n%s", k.Render(byte(netfilter.IPv4.NFT()), "dnet"))
	}
	for i, o := range owners {
		c := env.Begin("test")
		PortMappings.Remove(c, o, netfilter.PortMapSpec{Owner: o}, nil)
		Forwarding.Remove(c, o, netfilter.ForwardSpec{Owner: o}, nil)
		if err := c.Commit(); err != nil {
			t.Fatal(err)
		}
		if last := i == len(owners)-1; hairpin() == last {
			t.Fatalf("after %d of %d DELs the hairpin_ifs element present is %v", i+1, len(owners), !last)
		}
	}
	table := k.Render(byte(netfilter.IPv4.NFT()), "dnet")
	if strings.Contains(table, "id=c") {
		t.Errorf("the table still names an attachment:\n%s", table)
	}
	if networkRecorded(t, env, "br0") {
		t.Error("the network's records outlive its attachments")
	}
}

// A restore's transaction printed, not applied: what a lost element needs
// shows as data, and the kernel is left as it was.
func TestRestorePrintsWithoutApplying(t *testing.T) {
	k := nftfake.New()
	env := Env{Store: state.New(t.TempDir()), Backends: host.Fake{Kernel: k}}
	ip := net.ParseIP("10.0.0.2").To4()
	rec := Record[netfilter.ForwardSpec]{Backend: "nftables", Specs: []netfilter.ForwardSpec{{Owner: owner, IP: ip, Bridge: "br0", Protect: true}}}
	if err := install(env, Forwarding, owner, rec); err != nil {
		t.Fatal(err)
	}
	if !k.DropFirstElement(byte(netfilter.IPv4.NFT()), "dnet", "guard_protect") {
		t.Fatal("no guard_protect element")
	}
	before, batches := k.Render(byte(netfilter.IPv4.NFT()), "dnet"), k.Batches()
	st, _, err := Forwarding.Stored(env, owner.Tag())
	if err != nil {
		t.Fatal(err)
	}
	c := env.Begin("restore")
	st.Reapply(c)
	var out strings.Builder
	if err := c.Print(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "add element ip dnet guard_protect { 0a000002") {
		t.Errorf("the printed restore does not add the lost element:\n%s", out.String())
	}
	if k.Batches() != batches || k.Render(byte(netfilter.IPv4.NFT()), "dnet") != before {
		t.Error("printing the transaction changed the kernel")
	}
	if err := c.Commit(); err != nil || Forwarding.Verify(env, rec) != nil {
		t.Errorf("the same change committed after printing: %v, then check: %v", err, Forwarding.Verify(env, rec))
	}
}

// A member whose record is gone (removed by hand, or a crash of an older
// order of removal) is dropped by GC's prune, and its network goes.
func TestPruneMembersWithoutRecords(t *testing.T) {
	env, h := newEnv(t)
	if err := install(env, Forwarding, owner, fwdRecord(owner, "br0", "10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	if err := env.Store.Remove(Forwarding.Name, owner.Tag()); err != nil {
		t.Fatal(err)
	}
	h.calls = nil
	if err := env.CollectNetworks(); err != nil || !networkRecorded(t, env, "br0") {
		t.Fatalf("the cheap look removed a network with a member: %v", err)
	}
	if err := env.PruneMembers(); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, h, "nftables IPv4 del-network br0 <nil>")
	if networkRecorded(t, env, "br0") {
		t.Error("network record left")
	}
}
