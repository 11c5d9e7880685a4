package bridgeplugin

import (
	"os"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// The deleter deletes the link in the netns it was started from and
// exits with 0, and leaves this process's descriptors as they were (on
// amd64 it shares the address space, not the descriptor table).
func TestLinkDeleterDeletesAndExits(t *testing.T) {
	testenv.RequireRoot(t)
	host := testenv.NewNS(t, testenv.Prefix()+"-deleter")
	for i := 0; i < 3; i++ { // more than one per process, as in a test binary
		host.MustRun("ip", "link", "add", "doomed9", "type", "bridge")
		keep, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		var pid int
		err = ns.WithNetNSPath(host.Path(), func(ns.NetNS) error {
			var err error
			pid, err = startLinkDeleter("doomed9")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		var st unix.WaitStatus
		if _, err := unix.Wait4(pid, &st, 0, nil); err != nil {
			t.Fatalf("wait for deleter %d: %v", pid, err)
		}
		if !st.Exited() || st.ExitStatus() != 0 {
			t.Fatalf("deleter %d: status %v", pid, st)
		}
		err = ns.WithNetNSPath(host.Path(), func(ns.NetNS) error {
			if _, err := netlink.LinkByName("doomed9"); err == nil {
				t.Errorf("round %d: doomed9 is still there after its deleter exited", i)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := keep.Stat(); err != nil {
			t.Errorf("round %d: a descriptor of this process after the deleter: %v", i, err)
		}
		keep.Close()
	}
}
