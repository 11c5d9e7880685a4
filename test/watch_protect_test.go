package e2e

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// protected is the world TestWatchRepairs* probe: a container of the
// default network publishing c1Mappings, one port with a source
// allowlist (the client only), and a neighbour routing to it.
type protected struct {
	w   *world
	nbr *testenv.NS
	ip  string
}

const portListed = 8730 // published with a source allowlist: the client only

func newProtected(t *testing.T, backend string) *protected {
	w := newWorld(t, backend)
	nbr := w.newNearNeighbour()
	c1 := w.newContainer("c1")
	ms := append(c1Mappings(), withSources(both(portListed, ""), clientAddr)...)
	ip := w.addTo(w.conflist(""), c1, ms)
	return &protected{w: w, nbr: nbr, ip: ip}
}

// holds probes each protection and the published port, all at once:
// direct routing from the neighbour, 127.0.0.1 from the neighbour, the
// allowlist (the neighbour out, the client in), and the port from
// outside.
func (p *protected) holds() error {
	w := p.w
	probes := []struct {
		from  *testenv.NS
		addr  string
		port  int
		reach bool
	}{
		{p.nbr, p.ip, 5999, false},              // direct routing, a closed port: not even an RST
		{p.nbr, "127.0.0.1", portLocal, false},  // the loopback mapping
		{p.nbr, hostAddrNbr, portListed, false}, // outside the allowlist
		{w.client, hostAddr, portListed, true},  // inside it
		{w.client, hostAddr, portAll, true},     // the published port
		{p.nbr, hostAddrNbr, portAll, true},     // ... from the neighbour too
	}
	errs := make([]error, len(probes))
	var wg sync.WaitGroup
	for i, c := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := w.segment(c.from, fmt.Sprintf("%s:%d", c.addr, c.port), "SYN")
			if err != nil {
				errs[i] = err
			} else if reached := strings.HasPrefix(out, "reply:"); reached != c.reach {
				errs[i] = fmt.Errorf("SYN from %s to %s:%d: %s, want reached=%v", c.from.Name, c.addr, c.port, out, c.reach)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// partialLosses are the ways one table or chain of ours goes, per backend.
func partialLosses(w *world) map[string][][]string {
	ipt := w.iptables
	common := map[string][][]string{
		"nft delete table ip dnet": {{"nft", "delete", "table", "ip", "dnet"}},
		"iptables -t raw -F":       {{ipt, "-t", "raw", "-F"}},
		"iptables -F (filter)":     {{ipt, "-F"}},
		"iptables -t nat -F":       {{ipt, "-t", "nat", "-F"}},
		"nft flush ruleset":        {{"nft", "flush", "ruleset"}},
	}
	if w.backend == "iptables" {
		common["iptables -t mangle -F PREROUTING"] = [][]string{{ipt, "-t", "mangle", "-F", "PREROUTING"}}
		common["iptables -t raw -F PREROUTING"] = [][]string{{ipt, "-t", "raw", "-F", "PREROUTING"}}
		common["iptables -t mangle -F DNET-GUARD"] = [][]string{{ipt, "-t", "mangle", "-F", "DNET-GUARD"}}
	} else {
		common["nft flush chain ip dnet guard"] = [][]string{{"nft", "flush", "chain", "ip", "dnet", "guard"}}
		common["nft delete chain ip dnet guard"] = [][]string{{"nft", "delete", "chain", "ip", "dnet", "guard"}}
		common["nft delete the three filter hooks"] = [][]string{{"nft", "delete chain ip dnet guard; delete chain ip dnet guard_out; delete chain ip dnet forward"}}
		common["nft flush chain ip dnet guard_rules"] = [][]string{{"nft", "flush", "chain", "ip", "dnet", "guard_rules"}}
		common["nft flush chain ip dnet guard_protected"] = [][]string{{"nft", "flush", "chain", "ip", "dnet", "guard_protected"}}
		common["nft flush set ip dnet guard_protect"] = [][]string{{"nft", "flush", "set", "ip", "dnet", "guard_protect"}}
	}
	return common
}

// TestWatchRepairsPartialLosses: with the agent running, each partial
// loss of our state (one table, one chain, one set) is repaired: every
// protection holds again and the published ports answer, and dnetctl
// check passes. The time to repair is logged, never asserted. The
// control is the first loss without the agent: the protection is open.
func TestWatchRepairsPartialLosses(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			p := newProtected(t, backend)
			w := p.w
			if err := p.holds(); err != nil {
				t.Fatalf("before any loss: %v", err)
			}
			// The control: without the agent, a flush of the direct-routing
			// drop opens the container to the neighbour.
			w.dropDirectRoutingDrops()
			if err := p.holds(); err == nil {
				t.Fatal("control: the protections hold without their drop")
			}
			if out, err := w.dnetctl("restore"); err != nil {
				t.Fatalf("restore: %v\n%s", err, out)
			}
			a := w.startAgent()
			for name, cmds := range partialLosses(w) {
				start := time.Now()
				for _, cmd := range cmds {
					w.host.MustRun(cmd...)
				}
				took := w.checkPassesIn(start)
				if err := p.holds(); err != nil {
					t.Errorf("after %s, check passes but: %v", name, err)
				}
				t.Logf("%s: check passes again after %s", name, took.Round(time.Millisecond))
			}
			_ = a
		})
	}
}

// TestWatchStorm: 50 flushes in 5 s (a firewall manager reapplying its
// ruleset in a loop) never stop the agent: after the last one, every
// protection holds and the published ports answer again; the time from
// the last flush is logged. A second agent on the same state directory
// is refused with a message saying why.
func TestWatchStorm(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			p := newProtected(t, backend)
			w := p.w
			w.startAgent()
			flush := [][]string{{"nft", "flush", "ruleset"}}
			if backend == "iptables" {
				flush = [][]string{{w.iptables, "-t", "mangle", "-F"}, {w.iptables, "-t", "nat", "-F"}, {w.iptables, "-t", "raw", "-F"}}
			}
			for i := 0; i < 50; i++ {
				for _, cmd := range flush {
					w.host.MustRun(cmd...)
				}
				time.Sleep(100 * time.Millisecond)
			}
			last := time.Now()
			took := w.checkPassesIn(last)
			if err := p.holds(); err != nil {
				t.Errorf("after the storm, check passes but: %v", err)
			}
			t.Logf("after 50 flushes in 5 s: check passes %s after the last", took.Round(time.Millisecond))

			// A second agent on the same state directory.
			cmd := exec.Command("ip", "netns", "exec", w.host.Name, filepath.Join(w.bin, "dnetctl"), "-state-dir", w.stateDir(),
				"watch", "-status-file", filepath.Join(w.dir, "second.json"))
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), "another dnetctl watch already runs") {
				t.Errorf("a second agent: %v: %s", err, out)
			}
		})
	}
}

// checkPassesIn waits until dnetctl check passes and returns how long
// that took since since (logged, never asserted).
func (w *world) checkPassesIn(since time.Time) time.Duration {
	w.t.Helper()
	testenv.Eventually(w.t, 10*time.Second, "dnetctl check passing", func() error {
		if out, err := w.dnetctl("check", "-status-file", "/nonexistent"); err != nil {
			return fmt.Errorf("check: %v\n%s", err, out)
		}
		return nil
	})
	return time.Since(since)
}
