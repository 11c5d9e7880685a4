package hostlocal

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// GC releases the reservations (and indexes) of attachments not in the
// valid list, keeps the valid ones' and anything it cannot attribute, and
// honours reservations written without an ifname by older references.
func TestStoreGC(t *testing.T) {
	dir := t.TempDir()
	c := config(t, dir, `{"type":"host-local","ranges":[[{"subnet":"10.2.0.0/29"}]]}`)
	ips := map[string]string{}
	for _, id := range []string{"keep", "stale"} {
		res, err := Allocate(c, id, "eth0")
		if err != nil {
			t.Fatal(err)
		}
		ips[id] = res.IPs[0].Address.IP.String()
	}
	netDir := filepath.Join(dir, "net1")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(netDir, "10.2.0.5"), []byte("legacy"), 0o644)) // no ifname: keeps by ID
	must(os.WriteFile(filepath.Join(netDir, "10.2.0.6"), nil, 0o644))              // nobody's: left alone
	s, err := OpenStore(dir, "net1")
	must(err)
	must(s.GC([]types.GCAttachment{{ContainerID: "keep", IfName: "eth0"}, {ContainerID: "legacy", IfName: "eth0"}}))
	s.Close()
	for addr, want := range map[string]bool{ips["keep"]: true, ips["stale"]: false, "10.2.0.5": true, "10.2.0.6": true} {
		_, err := os.Stat(filepath.Join(netDir, addr))
		if got := err == nil; got != want {
			t.Errorf("reservation %s present %v after GC, want %v", addr, got, want)
		}
	}
	s, _ = OpenStore(dir, "net1")
	defer s.Close()
	if _, err := os.Stat(s.indexPath("stale", "eth0")); err == nil {
		t.Error("the stale attachment's index survived GC")
	}
	if _, err := os.Stat(s.indexPath("keep", "eth0")); err != nil {
		t.Errorf("the valid attachment's index is gone: %v", err)
	}
}

// STATUS says 50 when a range set has no free address, and recovers.
func TestStatusExhausted(t *testing.T) {
	dir := t.TempDir()
	c := config(t, dir, `{"type":"host-local","ranges":[[{"subnet":"10.2.0.0/30"}]]}`) // .2 only (.1 gateway)
	s, err := OpenStore(dir, "net1")
	if err != nil {
		t.Fatal(err)
	}
	if free, err := s.hasFree(c.Ranges[0]); err != nil || !free {
		t.Fatalf("empty range: free %v, %v", free, err)
	}
	s.Close()
	if _, err := Allocate(c, "only", "eth0"); err != nil {
		t.Fatal(err)
	}
	s, _ = OpenStore(dir, "net1")
	defer s.Close()
	if free, err := s.hasFree(c.Ranges[0]); err != nil || free {
		t.Fatalf("full range: free %v, %v", free, err)
	}
	if err := s.writable(); err != nil {
		t.Errorf("writable: %v", err)
	}
}

// Hostile store contents (a directory named like an address, a symlink
// pointing elsewhere, garbage) are never handed out, never released for
// someone else, and never followed.
func TestHostileStoreContents(t *testing.T) {
	dir := t.TempDir()
	c := config(t, dir, `{"type":"host-local","ranges":[[{"subnet":"10.2.0.0/29"}]]}`) // .2-.6
	netDir := filepath.Join(dir, "net1")
	target := filepath.Join(t.TempDir(), "elsewhere")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(netDir, "10.2.0.2"), 0o755))
	must(os.WriteFile(target, []byte("victim\r\neth0"), 0o644))
	must(os.Symlink(target, filepath.Join(netDir, "10.2.0.3")))
	must(os.WriteFile(filepath.Join(netDir, "10.2.0.4"), []byte("\x00\xff garbage"), 0o644))
	res, err := Allocate(c, "c", "eth0")
	must(err)
	if got := res.IPs[0].Address.IP.String(); got != "10.2.0.5" {
		t.Fatalf("allocated %s, want 10.2.0.5, the first address nothing occupies", got)
	}
	s, err := OpenStore(dir, "net1")
	must(err)
	must(s.Release("victim", "eth0"))
	must(s.GC([]types.GCAttachment{{ContainerID: "c", IfName: "eth0"}}))
	s.Close()
	if _, err := os.Stat(target); err != nil {
		t.Errorf("a symlink's target was removed: %v", err)
	}
	for _, name := range []string{"10.2.0.2", "10.2.0.3", "10.2.0.4", "10.2.0.5"} {
		if _, err := os.Lstat(filepath.Join(netDir, name)); err != nil {
			t.Errorf("%s was removed: %v", name, err)
		}
	}
}
