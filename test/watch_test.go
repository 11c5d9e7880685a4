package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// agent is a running dnetctl watch in the world's host netns, logging to
// a file the test reads.
type agent struct {
	w      *world
	log    string
	status string
	pid    int
}

// startAgent starts the node agent with extra flags and waits for its
// first look (its status file).
func (w *world) startAgent(flags ...string) *agent {
	w.t.Helper()
	a := &agent{w: w, log: filepath.Join(w.dir, "watch.log"), status: filepath.Join(w.dir, "watch.json")}
	_ = os.Remove(a.status)
	args := append([]string{filepath.Join(w.bin, "dnetctl"), "-state-dir", w.stateDir(), "watch", "-poll", "500ms", "-status-file", a.status}, flags...)
	cmd := w.host.Start("sh", "-c", "exec "+strings.Join(args, " ")+" 2>>"+a.log)
	a.pid = cmd.Process.Pid
	testenv.Eventually(w.t, 10*time.Second, "the agent's first look", func() error {
		_, err := os.Stat(a.status)
		return err
	})
	w.t.Cleanup(func() {
		if data, err := os.ReadFile(a.log); err == nil {
			w.t.Logf("the agent's log:\n%s", data)
		}
	})
	return a
}

func (a *agent) stop() {
	_ = syscallKill(a.pid)
	testenv.Eventually(a.w.t, 10*time.Second, "the agent stopping", func() error {
		// Stopped, or a zombie its starter has not reaped yet.
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.pid)); err == nil && !strings.Contains(string(st), "State:\tZ") {
			return fmt.Errorf("pid %d still runs", a.pid)
		}
		return nil
	})
}

// ours is what of the host's ruleset is ours, one line each, sorted, with
// counters and handles left out: two of them compare equal when every
// rule and element of ours is there once. The dnet tables are listed
// whichever the backend (the iptables one keeps its allowlists there),
// and ip6tables too in a dual-stack world.
func (w *world) ours() string {
	var lines []string
	for _, fam := range []string{"ip", "ip6"} {
		out, _ := w.host.Run("nft", "list", "table", fam, "dnet")
		lines = append(lines, strings.Split(out, "\n")...)
	}
	ipts := []string{w.iptables}
	if w.ipv6 {
		ipts = append(ipts, strings.Replace(w.iptables, "iptables", "ip6tables", 1))
	}
	for _, ipt := range ipts {
		out, _ := w.host.Run(ipt + "-save")
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "DNET") || strings.Contains(l, "dnet:") {
				lines = append(lines, l)
			}
		}
	}
	counters := regexp.MustCompile(`counter packets \d+ bytes \d+|\[\d+:\d+\]`)
	var out []string
	for _, l := range lines {
		if l = strings.TrimSpace(counters.ReplaceAllString(l, "")); l != "" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// restoredIn waits until the published port answers again and returns how
// long that took (logged, never asserted: tests assert no wall-clock time).
func (w *world) restoredIn(since time.Time) time.Duration {
	w.t.Helper()
	testenv.Eventually(w.t, 15*time.Second, "the published port answering again", func() error {
		_, err := w.request(w.client, "tcp", hostAddr, portAll)
		return err
	})
	return time.Since(since)
}

// TestWatchRestores: with the agent running, each way a host loses its
// rules (nft flush ruleset; a firewalld-style reload, the whole ruleset
// replaced by another; iptables -t nat -F and -F) is followed by the
// published port answering again, and by exactly the rules there were
// before, once each; without the agent, the port stays dead (the
// control); an agent killed at several points of a restore and started
// again leaves one copy of everything.
func TestWatchRestores(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, backend)
			c1 := w.newContainer("c1")
			w.addTo(w.conflist(""), c1, c1Mappings())
			w.mustReach(w.client, "tcp", hostAddr, portAll)
			before := w.ours()

			// The control: no agent, nothing comes back.
			w.host.MustRun("nft", "flush", "ruleset")
			w.mustNotReach(w.client, "tcp", hostAddr, portAll)
			a := w.startAgent()
			w.restoredIn(time.Now())
			if got := w.ours(); got != before {
				t.Fatalf("after the agent's first restore the rules differ:\n--- before\n%s\n--- after\n%s", before, got)
			}

			reload := filepath.Join(w.dir, "firewalld.nft")
			if err := os.WriteFile(reload, []byte("flush ruleset\ntable inet firewalld {\n\tchain filter_INPUT {\n\t\ttype filter hook input priority 10; policy accept;\n\t}\n}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				name string
				cmds [][]string
			}{
				{"nft flush ruleset", [][]string{{"nft", "flush", "ruleset"}}},
				{"a firewalld-style reload", [][]string{{"nft", "-f", reload}}},
				{"iptables -t nat -F, -F", [][]string{{w.iptables, "-t", "nat", "-F"}, {w.iptables, "-F"}}},
			} {
				start := time.Now()
				for _, cmd := range c.cmds {
					w.host.MustRun(cmd...)
				}
				took := w.restoredIn(start)
				t.Logf("%s: answering again after %s", c.name, took.Round(time.Millisecond))
				testenv.Eventually(t, 10*time.Second, "the rules as before "+c.name, func() error {
					if got := w.ours(); got != before {
						return fmt.Errorf("the rules differ:\n--- before\n%s\n--- now\n%s", before, got)
					}
					return nil
				})
			}

			// Killed at several points after a flush (waiting out the
			// burst, in the middle of its restore, just after it) and
			// started again: one copy of everything each time.
			for _, after := range []time.Duration{5 * time.Millisecond, 25 * time.Millisecond, 40 * time.Millisecond, 60 * time.Millisecond, 90 * time.Millisecond} {
				w.host.MustRun("nft", "flush", "ruleset")
				time.Sleep(after)
				a.stop()
				a = w.startAgent()
				w.restoredIn(time.Now())
				testenv.Eventually(t, 10*time.Second, fmt.Sprintf("the rules as before, after a kill %s after a flush", after), func() error {
					if got := w.ours(); got != before {
						return fmt.Errorf("the rules differ:\n--- before\n%s\n--- now\n%s", before, got)
					}
					return nil
				})
			}
		})
	}
}

// TestWatchHoldsPorts: while the agent runs, a host service cannot bind a
// published port (TCP or UDP), as under Docker, and dnetctl list says the
// port is held; after DEL it can.
func TestWatchHoldsPorts(t *testing.T) {
	w := newWorld(t, "nftables")
	c1 := w.newContainer("c1")
	conf := w.conflist("")
	w.addTo(conf, c1, c1Mappings())
	w.startAgent()
	bindFails := func(proto string) error {
		addr := fmt.Sprintf("TCP4-LISTEN:%d,bind=0.0.0.0", portAll)
		if proto == "udp" {
			addr = fmt.Sprintf("UDP4-RECV:%d,bind=0.0.0.0", portAll)
		}
		out, err := w.host.Run("timeout", "1", "socat", "-u", addr, "-")
		if err == nil || !strings.Contains(out, "Address already in use") {
			return fmt.Errorf("socat %s: %v: %s", addr, err, out)
		}
		return nil
	}
	for _, proto := range []string{"tcp", "udp"} {
		testenv.Eventually(t, 10*time.Second, proto+" bind refused while published", func() error { return bindFails(proto) })
	}
	if out := w.host.MustRun(filepath.Join(w.bin, "dnetctl"), "-state-dir", w.stateDir(), "list", "-status-file", filepath.Join(w.dir, "watch.json")); !strings.Contains(out, "held)") {
		t.Errorf("dnetctl list does not say the ports are held:\n%s", out)
	}
	w.mustReach(w.client, "tcp", hostAddr, portAll) // the held socket takes nothing from the DNAT
	if err := w.libcniFor(conf).del(c1, c1Mappings()); err != nil {
		t.Fatal(err)
	}
	for _, proto := range []string{"tcp", "udp"} {
		testenv.Eventually(t, 10*time.Second, proto+" bind possible after DEL", func() error {
			if bindFails(proto) == nil {
				return fmt.Errorf("%s port %d still held", proto, portAll)
			}
			return nil
		})
	}
}

// TestWatchCollects: an attachment whose container went away without a
// DEL is collected (rules, records, address), through the DEL libcni's
// cache allows; a live one beside it is untouched.
func TestWatchCollects(t *testing.T) {
	w := newWorld(t, "nftables")
	conf := w.conflist("")
	live, gone := w.newContainer("live"), w.newContainer("gone")
	w.addTo(conf, live, both(portAll, ""))
	goneIP := w.addTo(conf, gone, both(portAll+1, ""))
	w.startAgent("-collect", "-grace", "1s", "-cni-path", w.bin, "-cache-dir", filepath.Join(w.dir, "cache"))
	gone.vanish(t) // the container's netns goes, and its veth with it; no DEL
	testenv.Eventually(t, 20*time.Second, "the gone container collected", func() error {
		if out, _ := w.host.Run("nft", "list", "table", "ip", "dnet"); strings.Contains(out, goneIP+" ") {
			return fmt.Errorf("the table still names %s", goneIP)
		}
		if _, err := os.Stat(filepath.Join(w.ipamDir(), netName, goneIP)); err == nil {
			return fmt.Errorf("%s is still reserved", goneIP)
		}
		return nil
	})
	w.mustReach(w.client, "tcp", hostAddr, portAll)
	if out, err := w.host.Run(filepath.Join(w.bin, "dnetctl"), "-state-dir", w.stateDir(), "check", "-status-file", "/nonexistent"); err != nil {
		t.Errorf("dnetctl check after the collection: %v\n%s", err, out)
	}
}

func syscallKill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// vanish ends c as a crashed runtime's container ends: its processes
// killed and its netns gone, so the kernel deletes its veth pair, and no
// DEL sent.
func (c *container) vanish(t *testing.T) {
	out, _ := exec.Command("ip", "netns", "pids", c.ns.Name).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if err := c.ns.Delete(); err != nil {
		t.Fatal(err)
	}
}

// TestWatchCollectsCRI: containerd 1.6 never sends CNI GC. A pod whose
// sandbox died with its netns (as a crashed runtime or a reboot leaves it)
// and whose DEL never came is collected by the agent, through the DEL
// containerd's libcni cache allows: its rules, hostPort and address go;
// a live pod beside it is untouched. The agent runs where containerd
// does, in the private mount namespace, so the DEL finds the same store.
func TestWatchCollectsCRI(t *testing.T) {
	h := newClientHost(t, "containerd CRI, agent", "containerd", "ctr", "runc")
	writeFile(t, filepath.Join(h.netD, "10-dockernet.conflist"), string(renderKubernetes(t, podCIDR)))
	c := h.startContainerd("k8s.io")
	cri := h.crictl(c)
	ids, ips := map[string]string{}, map[string]string{}
	for i, name := range []string{"live", "gone"} {
		pod := podSandbox{Name: name, Ports: []criPort{{Protocol: criTCP, ContainerPort: helloPort, HostPort: 8090 + i}}}
		id, err := cri("runp", pod.write(t, c.dir))
		if err != nil {
			t.Fatal(err)
		}
		ids[name], ips[name] = id, h.podIP(cri, id)
	}

	status, logFile := filepath.Join(h.dir, "watch.json"), filepath.Join(h.dir, "watch.log")
	log, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	agent := h.command(filepath.Join(h.bin, "dnetctl"), "watch", "-collect", "-grace", "1s", "-poll", "500ms",
		"-cni-path", "/opt/cni/bin", "-status-file", status)
	agent.Stdout, agent.Stderr = log, log
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = agent.Process.Kill()
		_ = agent.Wait()
		data, _ := os.ReadFile(logFile)
		t.Logf("the agent's log:\n%s", data)
	})

	// The gone pod's sandbox dies and its netns is unmounted: the kernel
	// frees the netns and deletes the veth pair. No StopPodSandbox comes.
	var info struct {
		Info struct {
			Pid         int `json:"pid"`
			RuntimeSpec struct {
				Linux struct {
					Namespaces []struct{ Type, Path string } `json:"namespaces"`
				} `json:"linux"`
			} `json:"runtimeSpec"`
		} `json:"info"`
	}
	out, err := cri("inspectp", "-o", "json", ids["gone"])
	if err == nil {
		err = json.Unmarshal([]byte(out), &info)
	}
	if err != nil || info.Info.Pid <= 0 {
		t.Fatalf("crictl inspectp %s: %v (pid %d)", ids["gone"], err, info.Info.Pid)
	}
	_ = syscall.Kill(info.Info.Pid, syscall.SIGKILL)
	for _, ns := range info.Info.RuntimeSpec.Linux.Namespaces {
		if ns.Type == "network" && ns.Path != "" {
			if _, err := h.run("umount", ns.Path); err != nil {
				t.Fatal(err)
			}
		}
	}
	testenv.Eventually(t, 30*time.Second, "the gone pod collected", func() error {
		if out, _ := h.host.Run("nft", "list", "table", "ip", "dnet"); strings.Contains(out, ips["gone"]+" ") {
			return fmt.Errorf("the table still names %s", ips["gone"])
		}
		if _, err := os.Stat(filepath.Join(h.varLib, "networks", "dockernet", ips["gone"])); err == nil {
			return fmt.Errorf("%s is still reserved", ips["gone"])
		}
		return nil
	})
	if out, _ := h.host.Run("nft", "list", "table", "ip", "dnet"); !strings.Contains(out, ips["live"]+" ") {
		t.Errorf("the live pod's %s is gone from the table too:\n%s", ips["live"], out)
	}
	if _, err := os.Stat(filepath.Join(h.varLib, "networks", "dockernet", ips["live"])); err != nil {
		t.Errorf("the live pod's address %s is no longer reserved: %v", ips["live"], err)
	}
}
