package bridgeplugin

import (
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// A handle's socket answers for the netns it was opened in, whichever
// thread uses it later: what lets ADD open the host's before its first
// netns.Do and the container's inside one.
func TestRTNLStaysInItsNetns(t *testing.T) {
	testenv.RequireRoot(t)
	a := testenv.NewNS(t, testenv.Prefix()+"-rtnla")
	b := testenv.NewNS(t, testenv.Prefix()+"-rtnlb")
	a.MustRun("ip", "link", "add", "only-in-a", "type", "bridge")
	var inA *netlink.Handle
	if err := ns.WithNetNSPath(a.Path(), func(ns.NetNS) error { inA = rtnl(); return nil }); err != nil {
		t.Fatal(err)
	}
	defer inA.Close()
	err := ns.WithNetNSPath(b.Path(), func(ns.NetNS) error {
		if _, err := inA.LinkByName("only-in-a"); err != nil {
			t.Errorf("a handle opened in netns a, used from b: %v", err)
		}
		if _, err := perRequest().LinkByName("only-in-a"); err == nil {
			t.Errorf("a request per socket from b found a's link")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
