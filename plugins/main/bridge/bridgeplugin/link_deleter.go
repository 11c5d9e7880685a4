package bridgeplugin

import (
	"sync"
	"unsafe"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/dockernet/cni-plugins/plugins/pkg/vmchild"
)

// startLinkDeleter starts a child that deletes the link called name in
// this thread's netns and exits, and returns its pid; it is not waited
// for. The child makes a few raw system calls (closing what it
// inherited, setsid, one netlink write, exit) and never runs Go code
// that could need the runtime, as the syscall package's own child
// between fork and exec; so it costs a fork (on amd64 not even that:
// see vmchild), not a program start. The netlink request is
// made and its socket opened here, in the parent.
func startLinkDeleter(name string) (int, error) {
	req := nl.NewNetlinkRequest(unix.RTM_DELLINK, 0)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	msg := req.Serialize()
	keepForChild(msg)
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd) // the child holds its own reference
	pid, errno := vmchild.Write(uintptr(fd), uintptr(unsafe.Pointer(&msg[0])), uintptr(len(msg)))
	if errno != 0 {
		return 0, errno
	}
	return int(pid), nil
}

// sentByChildren holds every request a deleter was started with, for the
// life of the process: a child that shares this address space may write
// one after the call that made it has returned, and the collector must
// not reuse its memory. A DEL starts one; a test process, a few.
var sentByChildren struct {
	sync.Mutex
	msgs [][]byte
}

func keepForChild(msg []byte) {
	sentByChildren.Lock()
	sentByChildren.msgs = append(sentByChildren.msgs, msg)
	sentByChildren.Unlock()
}
