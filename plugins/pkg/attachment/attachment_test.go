package attachment

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/state"
)

// fakeHost records every backend call as "backend family op ip" and fails
// the calls named in failOn.
type fakeHost struct {
	calls     []string
	available []string
	noIPv6    bool
	failOn    map[string]bool
}

func (h *fakeHost) New(name string, f netfilter.Family) (netfilter.Backend, error) {
	if h.noIPv6 && f == netfilter.IPv6 {
		return nil, errors.New("ip6tables not found")
	}
	return &fakeBackend{h, name, f}, nil
}

func (h *fakeHost) Available() []string { return h.available }

type fakeBackend struct {
	h    *fakeHost
	name string
	f    netfilter.Family
}

func (b *fakeBackend) call(op string, ip net.IP) error {
	c := fmt.Sprintf("%s %s %s %v", b.name, b.f, op, ip)
	b.h.calls = append(b.h.calls, c)
	if b.h.failOn[c] {
		return errors.New("refused: " + c)
	}
	return nil
}

// fakePart runs the queued calls at commit, as the iptables backend runs
// its steps: in order, every one, their errors joined.
type fakePart struct{ calls []func() error }

func (p *fakePart) Commit() error {
	var errs []error
	for _, c := range p.calls {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

type fakeKey struct{}

func (b *fakeBackend) queue(tx *netfilter.Txn, op string, ip net.IP) {
	p := tx.Part(fakeKey{}, func() netfilter.Part { return &fakePart{} }).(*fakePart)
	p.calls = append(p.calls, func() error { return b.call(op, ip) })
}

func (b *fakeBackend) Name() string             { return b.name }
func (b *fakeBackend) Family() netfilter.Family { return b.f }
func (b *fakeBackend) AddPortMappings(tx *netfilter.Txn, s netfilter.PortMapSpec) {
	b.queue(tx, "add-ports", s.ContainerIP)
}
func (b *fakeBackend) DelPortMappings(tx *netfilter.Txn, s netfilter.PortMapSpec) {
	b.queue(tx, "del-ports", s.ContainerIP)
}
func (b *fakeBackend) CheckPortMappings(s netfilter.PortMapSpec) error {
	return b.call("check-ports", s.ContainerIP)
}
func (b *fakeBackend) AddMasquerade(tx *netfilter.Txn, s netfilter.MasqSpec) {
	b.queue(tx, "add-masq", s.IP)
}
func (b *fakeBackend) DelMasquerade(tx *netfilter.Txn, s netfilter.MasqSpec) {
	b.queue(tx, "del-masq", s.IP)
}
func (b *fakeBackend) CheckMasquerade(s netfilter.MasqSpec) error { return b.call("check-masq", s.IP) }
func (b *fakeBackend) AddForward(tx *netfilter.Txn, s netfilter.ForwardSpec) {
	b.queue(tx, "add-fwd", s.IP)
}
func (b *fakeBackend) DelForward(tx *netfilter.Txn, s netfilter.ForwardSpec) {
	b.queue(tx, "del-fwd", s.IP)
}
func (b *fakeBackend) CheckForward(s netfilter.ForwardSpec) error { return b.call("check-fwd", s.IP) }
func (b *fakeBackend) DelForwardGuard(tx *netfilter.Txn)          { b.queue(tx, "del-guard", nil) }
func (b *fakeBackend) DelNetwork(tx *netfilter.Txn, bridge string) {
	b.queue(tx, "del-network "+bridge, nil)
}

// commit runs one kind's operation as a change of its own.
func commit[S Spec](env Env, k Kind[S], queue func(c *Change)) error {
	c := env.Begin(k.Plugin)
	queue(c)
	return c.Commit()
}

func install[S Spec](env Env, k Kind[S], o netfilter.Owner, rec Record[S]) error {
	return commit(env, k, func(c *Change) { k.Install(c, o, rec) })
}

func remove[S Spec](env Env, k Kind[S], o netfilter.Owner, byTag S, families []netfilter.Family) error {
	return commit(env, k, func(c *Change) { k.Remove(c, o, byTag, families) })
}

var owner = netfilter.Owner{Network: "net", ContainerID: "c1", IfName: "eth0"}

func masqRecord(backend string, ips ...string) Record[netfilter.MasqSpec] {
	rec := Record[netfilter.MasqSpec]{Backend: backend}
	for _, ip := range ips {
		rec.Specs = append(rec.Specs, netfilter.MasqSpec{Owner: owner, IP: net.ParseIP(ip), Bridge: "br0"})
	}
	return rec
}

func newEnv(t *testing.T) (Env, *fakeHost) {
	h := &fakeHost{available: []string{"iptables", "nftables"}, failOn: map[string]bool{}}
	return Env{Store: state.New(t.TempDir()), Backends: h}, h
}

func wantCalls(t *testing.T, h *fakeHost, want ...string) {
	t.Helper()
	if !slices.Equal(h.calls, want) {
		t.Errorf("calls:\n  %s\nwant:\n  %s", strings.Join(h.calls, "\n  "), strings.Join(want, "\n  "))
	}
	h.calls = nil
}

func recorded(t *testing.T, env Env, kind string) bool {
	t.Helper()
	_, err := os.Stat(filepath.Join(env.Store.Dir, kind, owner.Tag()+".json"))
	return err == nil
}

func TestInstallAppliesInOrderAndReplacesAnEarlierRecord(t *testing.T) {
	env, h := newEnv(t)
	if err := install(env, Masquerade, owner, masqRecord("nftables", "10.0.0.2", "fd00::2")); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, h, "nftables IPv4 add-masq 10.0.0.2", "nftables IPv6 add-masq fd00::2")
	if !recorded(t, env, "masq") {
		t.Fatal("no record after Install")
	}
	// A re-ADD: what the first record installed goes, through its backend, first.
	if err := install(env, Masquerade, owner, masqRecord("iptables", "10.0.0.3")); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, h, "nftables IPv4 del-masq 10.0.0.2", "nftables IPv6 del-masq fd00::2", "iptables IPv4 add-masq 10.0.0.3")
}

func TestInstallFailureUndoesNewestFirstAndDropsTheRecord(t *testing.T) {
	env, h := newEnv(t)
	h.failOn["iptables IPv6 add-masq fd00::2"] = true
	err := install(env, Masquerade, owner, masqRecord("iptables", "10.0.0.2", "fd00::2"))
	var cniErr *types.Error
	if !errors.As(err, &cniErr) || cniErr.Code != types.ErrInternal || !strings.Contains(cniErr.Msg, "bridge: ipMasq: refused") {
		t.Fatalf("got %v, want a CNI error naming the plugin and the refusal", err)
	}
	wantCalls(t, h, "iptables IPv4 add-masq 10.0.0.2", "iptables IPv6 add-masq fd00::2",
		"iptables IPv6 del-masq fd00::2", "iptables IPv4 del-masq 10.0.0.2")
	if recorded(t, env, "masq") {
		t.Error("a failed Install left its record")
	}
}

func TestRemoveByRecordThenByTag(t *testing.T) {
	env, h := newEnv(t)
	if err := install(env, Masquerade, owner, masqRecord("nftables", "10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	h.calls = nil
	byTag := netfilter.MasqSpec{Owner: owner}
	if err := remove(env, Masquerade, owner, byTag, netfilter.BothFamilies); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, h, "nftables IPv4 del-masq 10.0.0.2")
	if recorded(t, env, "masq") {
		t.Error("Remove left the record")
	}
	// No record now: every available backend is searched in each family.
	if err := remove(env, Masquerade, owner, byTag, netfilter.BothFamilies); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, h, "iptables IPv4 del-masq <nil>", "iptables IPv6 del-masq <nil>",
		"nftables IPv4 del-masq <nil>", "nftables IPv6 del-masq <nil>")
	// No families: nothing could have been installed without a record.
	if err := remove(env, Masquerade, owner, byTag, nil); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, h)
	// A host without IPv6 tools holds no IPv6 rules to search.
	h.noIPv6 = true
	if err := remove(env, Masquerade, owner, byTag, netfilter.BothFamilies); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, h, "iptables IPv4 del-masq <nil>", "nftables IPv4 del-masq <nil>")
}

func TestCheckInstalledUsesTheRecordedBackend(t *testing.T) {
	env, h := newEnv(t)
	specs := masqRecord("nftables", "10.0.0.2").Specs
	if err := Masquerade.CheckInstalled(env, owner, specs, "iptables"); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, h, "iptables IPv4 check-masq 10.0.0.2")
	if err := install(env, Masquerade, owner, masqRecord("nftables", "10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	h.calls = nil
	h.failOn["nftables IPv4 check-masq 10.0.0.2"] = true
	err := Masquerade.CheckInstalled(env, owner, specs, "iptables")
	var cniErr *types.Error
	if !errors.As(err, &cniErr) || cniErr.Code != types.ErrInternal || !strings.Contains(cniErr.Msg, "refused") {
		t.Fatalf("got %v, want a CNI error", err)
	}
	wantCalls(t, h, "nftables IPv4 check-masq 10.0.0.2")
}

func TestUnreadableStoreIsAnIOError(t *testing.T) {
	env, _ := newEnv(t)
	dir := filepath.Join(env.Store.Dir, "masq")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, owner.Tag()+".json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := remove(env, Masquerade, owner, netfilter.MasqSpec{Owner: owner}, nil)
	var cniErr *types.Error
	if !errors.As(err, &cniErr) || cniErr.Code != types.ErrIOFailure {
		t.Fatalf("got %v, want CNI error %d", err, types.ErrIOFailure)
	}
}

// testdata/before-refactor holds records as the code before this package
// wrote them (bridge masquerade and portmap, both backends). They still
// read the same, and Remove deletes what they name, then the record.
func TestRecordsWrittenBeforeThisPackage(t *testing.T) {
	legacy := []netfilter.Owner{
		{Network: "legacy", ContainerID: "old-record", IfName: "eth0"}, // iptables
		{Network: "legacy", ContainerID: "old-record", IfName: "eth1"}, // nftables
	}
	for i, backend := range []string{"iptables", "nftables"} {
		o := legacy[i]
		t.Run(backend, func(t *testing.T) {
			env, h := newEnv(t)
			for _, kind := range []string{"masq", "portmap"} {
				data, err := os.ReadFile(filepath.Join("testdata", "before-refactor", kind, o.Tag()+".json"))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(filepath.Join(env.Store.Dir, kind), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(env.Store.Dir, kind, o.Tag()+".json"), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var pm Record[netfilter.PortMapSpec]
			if found, err := env.Store.Load("portmap", o.Tag(), &pm); !found || err != nil {
				t.Fatalf("load: %v %v", found, err)
			}
			want := netfilter.PortMapSpec{Owner: o, ContainerIP: net.ParseIP("10.88.0.2").To4(),
				ContainerNet: &net.IPNet{IP: net.ParseIP("10.88.0.0").To4(), Mask: net.CIDRMask(24, 32)},
				SNAT:         true, MarkBit: 13, HairpinIf: "br-legacy",
				Mappings: []netfilter.PortMapping{
					{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
					{HostIP: net.ParseIP("127.0.0.1"), HostPort: 8053, ContainerPort: 53, Protocol: "udp"},
				}}
			if pm.Backend != backend || len(pm.Specs) != 1 || fmt.Sprint(pm.Specs[0]) != fmt.Sprint(want) {
				t.Fatalf("portmap record reads as %+v, want backend %s and %+v", pm, backend, want)
			}
			// Written again, it is the same bytes: the format has not changed.
			again, err := json.MarshalIndent(pm, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if old, _ := os.ReadFile(filepath.Join("testdata", "before-refactor", "portmap", o.Tag()+".json")); string(again) != string(old) {
				t.Errorf("the record format changed:\n%s\nwas:\n%s", again, old)
			}
			removals := []error{
				remove(env, Masquerade, o, netfilter.MasqSpec{Owner: o}, netfilter.BothFamilies),
				remove(env, portMappingsNoConntrack, o, netfilter.PortMapSpec{Owner: o}, netfilter.BothFamilies),
			}
			for _, err := range removals {
				if err != nil {
					t.Fatal(err)
				}
			}
			// The network the old portmap record depended on (its
			// hairpin bridge) has no attachment left: it goes too.
			wantCalls(t, h, backend+" IPv4 del-masq 10.88.0.2", backend+" IPv4 del-ports 10.88.0.2", backend+" IPv4 del-network br-legacy <nil>")
			for _, kind := range []string{"masq", "portmap"} {
				if _, err := os.Stat(filepath.Join(env.Store.Dir, kind, o.Tag()+".json")); !os.IsNotExist(err) {
					t.Errorf("%s record not removed: %v", kind, err)
				}
			}
		})
	}
}

// portMappingsNoConntrack is PortMappings without its conntrack flush,
// which needs the kernel.
var portMappingsNoConntrack = func() Kind[netfilter.PortMapSpec] {
	k := PortMappings
	k.FlushUDP = false
	return k
}()
