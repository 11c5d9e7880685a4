package attachment

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// GC through Collect: every kind of a gone attachment goes in one change,
// a live one and another network's stay, and a record that does not load
// is reported and left as it is, never skipped in silence.
func TestCollectAcrossKinds(t *testing.T) {
	env, h := newEnv(t)
	gone := netfilter.Owner{Network: "net", ContainerID: "gone", IfName: "eth0"}
	live := netfilter.Owner{Network: "net", ContainerID: "live", IfName: "eth0"}
	other := netfilter.Owner{Network: "other", ContainerID: "gone", IfName: "eth0"}
	for i, o := range []netfilter.Owner{gone, live, other} {
		ip := net.IPv4(10, 0, 0, byte(2+i))
		if err := install(env, Masquerade, o, Record[netfilter.MasqSpec]{Backend: "nftables", Specs: []netfilter.MasqSpec{{Owner: o, IP: ip}}}); err != nil {
			t.Fatal(err)
		}
		if err := install(env, Forwarding, o, Record[netfilter.ForwardSpec]{Backend: "nftables", Specs: []netfilter.ForwardSpec{{Owner: o, IP: ip}}}); err != nil {
			t.Fatal(err)
		}
	}
	// A half-written record of a fourth attachment.
	broken := netfilter.Owner{Network: "net", ContainerID: "broken", IfName: "eth0"}
	if err := os.WriteFile(filepath.Join(env.Store.Dir, "masq", broken.Tag()+".json"), []byte(`{"Backend":`), 0o600); err != nil {
		t.Fatal(err)
	}
	// What an ADD that crashed while writing its first record left.
	crashed := filepath.Join(env.Store.Dir, "forward", "crashed.json.tmp")
	if err := os.WriteFile(crashed, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h.calls = nil
	err := Collect(env, "bridge", "net", map[string]bool{live.Tag(): true}, Masquerade, Forwarding)
	if _, serr := os.Stat(crashed); serr == nil {
		t.Error("Collect left a crashed ADD's temporary record")
	}
	if err == nil || !strings.Contains(err.Error(), broken.Tag()) {
		t.Errorf("Collect: %v, want the unreadable record named", err)
	}
	wantCalls(t, h, "nftables IPv4 del-masq 10.0.0.2", "nftables IPv4 del-fwd 10.0.0.2")
	for _, c := range []struct {
		o    netfilter.Owner
		kind string
		want bool
	}{{gone, "masq", false}, {gone, "forward", false}, {live, "masq", true}, {other, "forward", true}, {broken, "masq", true}} {
		_, err := os.Stat(filepath.Join(env.Store.Dir, c.kind, c.o.Tag()+".json"))
		if (err == nil) != c.want {
			t.Errorf("%s record of %s/%s: present %v, want %v", c.kind, c.o.Network, c.o.ContainerID, err == nil, c.want)
		}
	}
}

// One change over two kinds: if any part fails, both kinds' state and
// records go, not only the failing kind's.
func TestChangeUndoesEveryKind(t *testing.T) {
	env, h := newEnv(t)
	h.failOn["iptables IPv4 add-fwd 10.0.0.2"] = true
	c := env.Begin("bridge")
	Masquerade.Install(c, owner, masqRecord("iptables", "10.0.0.2"))
	Forwarding.Install(c, owner, Record[netfilter.ForwardSpec]{Backend: "iptables", Specs: []netfilter.ForwardSpec{{Owner: owner, IP: net.ParseIP("10.0.0.2")}}})
	if err := c.Commit(); err == nil || !strings.Contains(err.Error(), "bridge: refused") {
		t.Fatalf("Commit: %v, want the refusal", err)
	}
	wantCalls(t, h, "iptables IPv4 add-masq 10.0.0.2", "iptables IPv4 add-fwd 10.0.0.2",
		"iptables IPv4 del-fwd 10.0.0.2", "iptables IPv4 del-masq 10.0.0.2")
	if recorded(t, env, "masq") || recorded(t, env, "forward") {
		t.Error("a failed change left a record")
	}
}

// When undoing a failed change fails too, its records stay: the state
// they describe may still be there, and only they let DEL or GC find it.
func TestFailedUndoKeepsTheRecords(t *testing.T) {
	env, h := newEnv(t)
	h.failOn["iptables IPv4 add-fwd 10.0.0.2"] = true
	h.failOn["iptables IPv4 del-masq 10.0.0.2"] = true
	c := env.Begin("bridge")
	Masquerade.Install(c, owner, masqRecord("iptables", "10.0.0.2"))
	Forwarding.Install(c, owner, Record[netfilter.ForwardSpec]{Backend: "iptables", Specs: []netfilter.ForwardSpec{{Owner: owner, IP: net.ParseIP("10.0.0.2")}}})
	if err := c.Commit(); err == nil || !strings.Contains(err.Error(), "records stay") {
		t.Fatalf("Commit: %v, want the failed undo named", err)
	}
	if !recorded(t, env, "masq") || !recorded(t, env, "forward") {
		t.Error("a record went although undoing its state failed")
	}
}

// A crashed ADD's temporary record of each kind (and of a link) goes in
// GC unless its attachment is kept or it names another network; a
// finished record is never a temporary one.
func TestCollectTemps(t *testing.T) {
	mine := netfilter.Owner{Network: "net", ContainerID: "mine", IfName: "eth0"}
	other := netfilter.Owner{Network: "other", ContainerID: "theirs", IfName: "eth0"}
	masq := func(o netfilter.Owner) string {
		return `{"Version":1,"Backend":"nftables","Specs":[{"Owner":{"Network":"` + o.Network + `","ContainerID":"` + o.ContainerID + `","IfName":"eth0"}}]}`
	}
	link := func(o netfilter.Owner) string { return `{"Owner":{"Network":"` + o.Network + `"}}` }
	for _, tc := range []struct {
		kind      string
		networkOf func([]byte) string
		content   map[string]string // file name → content
		stays     []string
	}{
		{"masq", Masquerade.RecordNetwork, map[string]string{
			"partial.json.tmp": `{"Backend":`, "empty.json.tmp": "", "mine.json.tmp": masq(mine),
			"kept.json.tmp": "", "other.json.tmp": masq(other), "done.json": masq(mine), ".shared.json.tmp123": "",
		}, []string{"kept.json.tmp", "other.json.tmp", "done.json", ".shared.json.tmp123"}},
		{LinkKind, LinkNetwork, map[string]string{
			"empty.json.tmp": "", "mine.json.tmp": link(mine), "other.json.tmp": link(other),
		}, []string{"other.json.tmp"}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			env, _ := newEnv(t)
			dir := filepath.Join(env.Store.Dir, tc.kind)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			for name, data := range tc.content {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := CollectTemps(env.Store, tc.kind, "net", map[string]bool{"kept": true}, tc.networkOf); err != nil {
				t.Fatal(err)
			}
			for name := range tc.content {
				_, err := os.Stat(filepath.Join(dir, name))
				if want := slices.Contains(tc.stays, name); (err == nil) != want {
					t.Errorf("%s there: %v, want %v", name, err == nil, want)
				}
			}
		})
	}
}
