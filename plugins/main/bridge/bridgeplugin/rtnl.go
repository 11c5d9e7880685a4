package bridgeplugin

import (
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// rtnl opens one route netlink socket for the requests an ADD makes in
// one netns. The netlink package's own functions open, bind and close a
// socket for every request, about 16 in an ADD. The socket stays in the
// netns of the thread that opened it: open the host's from the plugin's
// own thread, a container's inside its netns.Do. Where the kernel
// refuses a socket now, the handle makes one per request, as the package
// functions do, and the request that follows reports the error.
func rtnl() *netlink.Handle {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return perRequest()
	}
	return h
}

// perRequest is the netlink package functions' way: a socket per request,
// opened in the netns of the thread that makes it.
func perRequest() *netlink.Handle { return &netlink.Handle{} }
