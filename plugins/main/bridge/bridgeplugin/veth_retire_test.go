package bridgeplugin_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// retiredLinks names the links of a retired pair in ns ("vgone…").
func retiredLinks(ns *testenv.NS) string {
	out, _ := ns.Run("ip", "-o", "link", "show")
	var gone []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], "vgone") {
			gone = append(gone, strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":"))
		}
	}
	return strings.Join(gone, " ")
}

// retired names the links of a retired pair in the host and the container.
func (r *rig) retired() string {
	return strings.TrimSpace(retiredLinks(r.host) + " " + retiredLinks(r.ctr))
}

// add adds the container and returns the result; del deletes it.
func (r *rig) add(conf []byte) []byte {
	r.t.Helper()
	res, err := r.call("ADD", conf)
	if err != nil {
		r.t.Fatal(err)
	}
	return res
}

func (r *rig) del(conf, res []byte) {
	r.t.Helper()
	if _, err := r.call("DEL", withPrev(r.t, conf, res)); err != nil {
		r.t.Fatal(err)
	}
}

// addThenDel adds the container and deletes it, and checks that DEL
// left nothing under the names a DEL checks.
func (r *rig) addThenDel(conf []byte) {
	r.t.Helper()
	r.del(conf, r.add(conf))
	r.assertNothingLeft()
}

// DEL hands the pair's deletion to a child: when it returns, the pair
// carries no traffic and holds neither name, so the same container can be
// added again at once (podman's network reload: DEL then ADD in one
// netns); the child deletes the pair soon after.
func TestDelRetiresThePair(t *testing.T) {
	r := newRig(t)
	conf := r.conf(`"isGateway":true,"ipMasq":true`)
	r.addThenDel(conf)
	if out := r.host.MustRun("ip", "-o", "link", "show", "master", "br-test"); strings.TrimSpace(out) != "" {
		t.Errorf("ports left on the bridge after DEL:\n%s", out)
	}
	res := r.add(conf) // right after DEL
	if _, err := r.ctr.Run("ip", "link", "show", "eth0", "up"); err != nil {
		t.Errorf("eth0 after the second ADD: %v", err)
	}
	testenv.Eventually(t, 10*time.Second, "the retired pair deleted", func() error {
		if gone := r.retired(); gone != "" {
			return fmt.Errorf("still there: %s", gone)
		}
		return nil
	})
	r.del(conf, res)
	r.assertNothingLeft()
}

// A container end that is not the host end's peer (renamed, replaced)
// is not touched: DEL deletes the pair itself, by its host end.
func TestDelDeletesAPairItCannotRetire(t *testing.T) {
	r := newRig(t)
	conf := r.conf("")
	res := r.add(conf)
	r.ctr.MustRun("ip", "link", "set", "eth0", "down")
	r.ctr.MustRun("ip", "link", "set", "eth0", "name", "moved0")
	r.ctr.MustRun("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer")
	r.del(conf, res)
	if _, ok := r.link(r.host, hostVeth()); ok {
		t.Error("host veth left behind")
	}
	if _, ok := r.link(r.ctr, "moved0"); ok {
		t.Error("the pair's container end (renamed moved0) left behind: DEL did not delete the pair itself")
	}
	if _, ok := r.link(r.ctr, "eth0"); !ok {
		t.Error("DEL took the container's own eth0, which is not the pair's")
	}
	if gone := r.retired(); gone != "" {
		t.Errorf("retired links after a DEL that could not retire: %s", gone)
	}
}

// DEL hands a retired pair off after its other parts, and also when one
// of them failed: the pair does not wait, renamed and down, for the
// runtime's retry. Here the IPAM release fails (its dataDir is a file).
func TestDelHandsThePairOffWhenAnotherPartFails(t *testing.T) {
	r := newRig(t)
	conf := r.conf("")
	res := r.add(conf)
	file := filepath.Join(r.data, "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	bad := []byte(strings.Replace(string(conf), fmt.Sprintf("%q", r.data), fmt.Sprintf("%q", file), 1))
	if _, err := r.call("DEL", withPrev(t, bad, res)); err == nil {
		t.Fatal("DEL with the IPAM's dataDir a file succeeded")
	}
	testenv.Eventually(t, 10*time.Second, "the retired pair deleted", func() error {
		if gone := r.retired(); gone != "" {
			return fmt.Errorf("still there: %s", gone)
		}
		if _, ok := r.link(r.host, hostVeth()); ok {
			return fmt.Errorf("host veth %s still there", hostVeth())
		}
		return nil
	})
	r.del(conf, res) // the retry, with the IPAM's own dataDir
	r.assertNothingLeft()
}

// The control: with DNET_SYNC_VETH_DELETE=1, DEL deletes the pair before
// it returns, and nothing is retired.
func TestDelDeletesThePairItselfWhenAsked(t *testing.T) {
	t.Setenv("DNET_SYNC_VETH_DELETE", "1")
	r := newRig(t)
	r.addThenDel(r.conf(""))
	if gone := r.retired(); gone != "" {
		t.Errorf("retired links with DNET_SYNC_VETH_DELETE=1: %s", gone)
	}
}

// GC deletes a retired host end whose child did not run to its end, and
// nothing else off the bridge.
func TestGCDeletesRetiredLeftovers(t *testing.T) {
	r := newRig(t)
	conf := r.conf("")
	r.add(conf)
	r.host.MustRun("ip", "link", "add", "vgone0123456789", "type", "veth", "peer", "name", "vgonepeer")
	r.host.MustRun("ip", "link", "add", "vgone9876543210", "type", "bridge") // the shape, not a veth
	gc := strings.TrimSuffix(string(conf), "}") + `,"cni.dev/valid-attachments":[{"containerID":"ctr1","ifname":"eth0"}]}`
	if _, err := r.call("GC", []byte(gc)); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.link(r.host, "vgone0123456789"); ok {
		t.Error("GC left the retired veth")
	}
	if _, ok := r.link(r.host, "vgone9876543210"); !ok {
		t.Error("GC deleted a bridge that only has the retired shape")
	}
	if _, ok := r.link(r.host, hostVeth()); !ok {
		t.Error("GC deleted the live attachment's veth")
	}
}

// A DEL killed after retiring the pair and before its child deleted it
// leaves the pair under the retired name: the runtime's next DEL deletes
// it.
func TestDelAfterAKilledRetire(t *testing.T) {
	r := newRig(t)
	conf := r.conf("")
	res := r.add(conf)
	gone := "vgone" + strings.TrimPrefix(hostVeth(), "veth")
	r.ctr.MustRun("ip", "link", "set", "eth0", "down")
	r.ctr.MustRun("ip", "link", "set", "eth0", "name", gone)
	r.host.MustRun("ip", "link", "set", hostVeth(), "down")
	r.host.MustRun("ip", "link", "set", hostVeth(), "nomaster")
	r.host.MustRun("ip", "link", "set", hostVeth(), "name", gone)
	r.del(conf, res)
	if left := r.retired(); left != "" {
		t.Errorf("the retired pair outlived the DEL after it: %s", left)
	}
	r.assertNothingLeft()
}

// Where nothing reaps orphans (a container's PID 1 without an init), the
// retired pair's child stays a zombie after the DEL that forked it: the
// test process plays such a reaper, a subreaper that waits only for its
// own children, as Go's os/exec does. A later DEL sees the zombie, says
// so, keeps a mark, and deletes the pair itself; the note and the mark
// go with the host's last attachment (a second container holds the host
// until then). TestDelRetiresThePair, under this machine's reaping init,
// is the control.
func TestDelWithoutAReaperDeletesThePairItself(t *testing.T) {
	r := newRig(t)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
		for { // the zombies this test made ours
			if pid, err := unix.Wait4(-1, nil, unix.WNOHANG, nil); pid <= 0 || err != nil {
				return
			}
		}
	})
	conf := r.conf("")
	delSecond := r.secondContainer(conf)
	host := filepath.Join(r.data, "state", attachment.HostFolder)
	note, mark := filepath.Join(host, attachment.DeleterTag+".json"), filepath.Join(host, attachment.NoReaperTag+".json")

	r.del(conf, r.add(conf))
	noted, err := os.ReadFile(note)
	if err != nil {
		t.Fatalf("DEL noted no child: %v", err)
	}
	var child struct{ Pid int }
	if err := json.Unmarshal(noted, &child); err != nil || child.Pid == 0 {
		t.Fatalf("the note %q: %v", noted, err)
	}
	pid := child.Pid
	testenv.Eventually(t, 10*time.Second, "the child a zombie, its pair deleted", func() error {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || !strings.Contains(string(stat), ") Z ") {
			return fmt.Errorf("child %d: %q %v", pid, stat, err)
		}
		if gone := r.retired(); gone != "" {
			return fmt.Errorf("still there: %s", gone)
		}
		return nil
	})
	time.Sleep(2100 * time.Millisecond) // the grace a reaper gets
	r.del(conf, r.add(conf))
	if again, _ := os.ReadFile(note); string(again) != string(noted) {
		t.Errorf("DEL forked another child with nothing to reap it (noted %q, was %q)", again, noted)
	}
	if gone := r.retired(); gone != "" {
		t.Errorf("DEL retired the pair with nothing to reap its child: %s", gone)
	}
	if _, err := os.Stat(mark); err != nil {
		t.Errorf("no mark left: %v", err)
	}

	delSecond()
	for _, f := range []string{note, mark} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s outlived the host's last attachment", filepath.Base(f))
		}
	}
	r.assertNothingLeft()
}

// Where the host reaps (this machine's init), a DEL notes its child; the
// first DEL after the grace sees it reaped, marks the host as one that
// reaps and drops the note; DELs after it note nothing. The marks go
// with the host's last attachment (a second container holds it until
// then).
func TestDelNotesChildrenUntilOneIsSeenReaped(t *testing.T) {
	r := newRig(t)
	conf := r.conf("")
	delSecond := r.secondContainer(conf)
	host := filepath.Join(r.data, "state", attachment.HostFolder)
	note, seen := filepath.Join(host, attachment.DeleterTag+".json"), filepath.Join(host, attachment.ReaperTag+".json")
	exists := func(f string) bool { _, err := os.Stat(f); return err == nil }

	r.del(conf, r.add(conf))
	if !exists(note) || exists(seen) {
		t.Fatalf("after the first DEL: note %v, reaper mark %v; want a note only", exists(note), exists(seen))
	}
	testenv.Eventually(t, 10*time.Second, "the first DEL's pair deleted", func() error {
		if gone := r.retired(); gone != "" {
			return fmt.Errorf("still there: %s", gone)
		}
		return nil
	})
	time.Sleep(2100 * time.Millisecond) // the grace a reaper gets
	r.del(conf, r.add(conf))
	if exists(note) || !exists(seen) {
		t.Errorf("after the DEL past the grace: note %v, reaper mark %v; want the mark only", exists(note), exists(seen))
	}
	r.del(conf, r.add(conf))
	if exists(note) {
		t.Error("a DEL noted its child on a host seen to reap")
	}
	testenv.Eventually(t, 10*time.Second, "the pairs deleted by their children", func() error {
		if gone := r.retired(); gone != "" {
			return fmt.Errorf("still there: %s", gone)
		}
		return nil
	})

	delSecond()
	if exists(seen) {
		t.Error("the reaper mark outlived the host's last attachment")
	}
	r.assertNothingLeft()
}

// secondContainer adds a second container to the rig's network, which
// keeps the host busy (its state held) until the returned func deletes it.
func (r *rig) secondContainer(conf []byte) (del func()) {
	r.t.Helper()
	other := testenv.NewNS(r.t, testenv.Prefix()+"-ctr2")
	call := func(cmd string, conf []byte) []byte {
		r.t.Helper()
		out, err := r.host.Exec(r.bin, "bridge", testenv.Call{Command: cmd, ContainerID: "ctr2", Netns: other.Path(), IfName: "eth0", Conf: conf})
		if err != nil {
			r.t.Fatalf("%s of the second container: %v", cmd, err)
		}
		return out
	}
	res := call("ADD", conf)
	return func() { call("DEL", withPrev(r.t, conf, res)) }
}
