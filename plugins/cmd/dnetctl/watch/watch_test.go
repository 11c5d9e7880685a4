package watch

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// The agent never stops restoring: a storm of reloads gets a restore per
// restoreSpacing, a refused one says when it may run (so the last reload
// of a storm is answered within a spacing), and a storm is logged once
// per window.
func TestRestoreGuard(t *testing.T) {
	var g restoreGuard
	t0 := time.Unix(1000, 0)
	fights := 0
	// A reload every 100 ms for 5 s: 50 reloads.
	allowed := 0
	for i := 0; i < 50; i++ {
		now := t0.Add(time.Duration(i) * 100 * time.Millisecond)
		ok, next, fighting := g.allow(now)
		if fighting {
			fights++
		}
		if ok {
			allowed++
			continue
		}
		if next.Sub(now) > restoreSpacing || !next.After(now) {
			t.Fatalf("reload %d refused with the next restore at %s, %s later", i, next, next.Sub(now))
		}
	}
	if want := 25; allowed != want {
		t.Errorf("%d restores for 50 reloads 100 ms apart, want %d (one per %s)", allowed, want, restoreSpacing)
	}
	if fights != 1 {
		t.Errorf("the storm was logged %d times in one window, want once", fights)
	}
	// Restores far apart are all allowed, and never a fight.
	var h restoreGuard
	for i := 0; i < 3*fightMax; i++ {
		if ok, _, fighting := h.allow(t0.Add(time.Duration(i) * fightWindow)); !ok || fighting {
			t.Fatalf("restore %d, a window after the last: ok %v, fighting %v", i+1, ok, fighting)
		}
	}
}

func TestPortKey(t *testing.T) {
	cases := []struct {
		f      netfilter.Family
		m      netfilter.PortMapping
		want   string
		exists bool
	}{
		{netfilter.IPv4, netfilter.PortMapping{HostPort: 8080, Protocol: "tcp"}, "0.0.0.0:8080/tcp", true},
		{netfilter.IPv6, netfilter.PortMapping{HostPort: 8080, Protocol: "udp"}, "[::]:8080/udp", true},
		{netfilter.IPv4, netfilter.PortMapping{HostPort: 53, Protocol: "udp", HostIP: net.ParseIP("127.0.0.1")}, "127.0.0.1:53/udp", true},
		{netfilter.IPv6, netfilter.PortMapping{HostPort: 53, Protocol: "udp", HostIP: net.ParseIP("127.0.0.1")}, "", false}, // another family
		{netfilter.IPv4, netfilter.PortMapping{HostPort: 9000, Protocol: "sctp"}, "", false},                                // not held
		{netfilter.IPv4, netfilter.PortMapping{HostPort: 80, Protocol: "tcp", HostIP: net.ParseIP("0.0.0.0")}, "0.0.0.0:80/tcp", true},
	}
	for _, c := range cases {
		got, ok := PortKey(c.f, c.m)
		if got != c.want || ok != c.exists {
			t.Errorf("PortKey(%s, %s) = %q, %v; want %q, %v", c.f, c.m, got, ok, c.want, c.exists)
		}
	}
}

// drain returns once a burst is over, and at once on a closed channel.
func TestDrain(t *testing.T) {
	ch := make(chan struct{}, 10)
	for i := 0; i < 5; i++ {
		ch <- struct{}{}
	}
	drain(ch, 10*time.Millisecond)
	if len(ch) != 0 {
		t.Fatalf("%d notifications left after the drain", len(ch))
	}
	close(ch)
	drain(ch, time.Hour)
}

// The status file is never written through a symlink someone planted,
// nor into a directory others can write to.
func TestWriteStatusFileSafely(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "watch.json")
	// Symlinks at the file and at the old fixed temporary name.
	for _, link := range []string{path, path + ".tmp"} {
		if err := os.Symlink(victim, link); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeStatusFile(path, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(victim); string(data) != "keep" {
		t.Errorf("the symlink's target was written: %q", data)
	}
	if st, err := os.Lstat(path); err != nil || st.Mode()&os.ModeSymlink != 0 {
		t.Errorf("%s is still a symlink (%v)", path, err)
	}
	open := t.TempDir()
	if err := os.Chmod(open, 0o1777); err != nil {
		t.Fatal(err)
	}
	if err := writeStatusFile(filepath.Join(open, "watch.json"), []byte("{}")); err == nil {
		t.Error("written into a world-writable directory")
	}
}
