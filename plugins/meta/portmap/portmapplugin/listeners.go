package portmapplugin

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// tcpListen is TCP_LISTEN in sock_diag's state numbering.
const tcpListen = 10

// hostListener describes a socket of this host that a mapping would take
// over (a TCP listener, or a UDP socket bound and not connected, on the
// host port and on the mapping's address or every address), or "" when
// there is none. Sockets come from sock_diag over netlink. A socket on
// [::] counts for IPv4 too: unless it is IPV6_V6ONLY it also serves IPv4,
// and sock_diag here does not say which.
func hostListener(m netfilter.PortMapping, families []netfilter.Family) (string, error) {
	for _, f := range families {
		if _, ok := netfilter.HostIPFor(m, f); !ok {
			continue
		}
		for _, af := range []uint8{unix.AF_INET, unix.AF_INET6} {
			if f == netfilter.IPv6 && af == unix.AF_INET {
				continue
			}
			var socks []*netlink.Socket
			var err error
			if m.Protocol == "udp" {
				socks, err = netlink.SocketDiagUDP(af)
			} else if m.Protocol == "tcp" {
				socks, err = netlink.SocketDiagTCP(af)
			} else {
				return "", nil // sctp: sock_diag needs another module; not checked
			}
			if err != nil {
				return "", fmt.Errorf("list %s sockets over sock_diag: %v", m.Protocol, err)
			}
			for _, s := range socks {
				if int(s.ID.SourcePort) != m.HostPort {
					continue
				}
				if m.Protocol == "tcp" && s.State != tcpListen || m.Protocol == "udp" && s.ID.DestinationPort != 0 {
					continue
				}
				if !covers(s.ID.Source, m.HostIP) {
					continue
				}
				addr := net.JoinHostPort(s.ID.Source.String(), strconv.Itoa(m.HostPort))
				return fmt.Sprintf("%s/%s (%s)", addr, m.Protocol, socketOwner(s.INode)), nil
			}
		}
	}
	return "", nil
}

// covers reports whether a socket bound to local serves traffic to hostIP
// (nil or unspecified: every address).
func covers(local, hostIP net.IP) bool {
	if local.IsUnspecified() || hostIP == nil || hostIP.IsUnspecified() {
		return true
	}
	return local.Equal(hostIP)
}

// socketOwner names the process holding the socket with inode ino, found
// through /proc/<pid>/fd; only on the error path, as it reads every fd.
func socketOwner(ino uint32) string {
	target := "socket:[" + strconv.FormatUint(uint64(ino), 10) + "]"
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if link, err := os.Readlink(fd); err == nil && link == target {
			pid := strings.Split(fd, "/")[2]
			comm, _ := os.ReadFile("/proc/" + pid + "/comm")
			return fmt.Sprintf("process %s, pid %s", strings.TrimSpace(string(comm)), pid)
		}
	}
	return "process not found"
}
