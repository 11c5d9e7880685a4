package watch

import (
	"net"
	"testing"
	"time"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// The agent stops fighting a writer that keeps removing our state: the
// sixth restore within the window is refused, and so is every one until
// the pause is over.
func TestRestoreGuard(t *testing.T) {
	var g restoreGuard
	t0 := time.Unix(1000, 0)
	step := fightWindow / (2 * fightMax) // all of them well within one window
	for i := 0; i < fightMax; i++ {
		if ok, fighting := g.allow(t0.Add(time.Duration(i) * step)); !ok || fighting {
			t.Fatalf("restore %d refused", i+1)
		}
	}
	last := t0.Add(fightMax * step)
	if ok, fighting := g.allow(last); ok || !fighting {
		t.Fatalf("restore %d allowed: the agent would fight", fightMax+1)
	}
	if ok, _ := g.allow(last.Add(fightPause / 2)); ok {
		t.Fatal("allowed during the pause")
	}
	if ok, _ := g.allow(last.Add(fightPause + time.Second)); !ok {
		t.Fatal("refused after the pause")
	}
	// Restores far apart never add up to a fight.
	var h restoreGuard
	for i := 0; i < 3*fightMax; i++ {
		if ok, _ := h.allow(t0.Add(time.Duration(i) * fightWindow)); !ok {
			t.Fatalf("restore %d, a window after the last, refused", i+1)
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
