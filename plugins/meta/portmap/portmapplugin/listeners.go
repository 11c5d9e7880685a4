package portmapplugin

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// agentComm is the node agent's process name (dnetctl watch): the ports
// it holds are published ports of recorded attachments, not services.
const agentComm = "dnetctl"

// tcpListen is TCP_LISTEN in sock_diag's state numbering.
const tcpListen = 10

// hostListeners finds, for each mapping, a socket of this host it would
// take over (a TCP listener, or a UDP socket bound and not connected, on
// the host port and on the mapping's address or every address), and
// describes it; mappings with none are absent. Sockets come from
// sock_diag over netlink, one dump per protocol and address family
// whatever the number of mappings. A socket on [::] counts for IPv4 too:
// unless it is IPV6_V6ONLY it also serves IPv4, and sock_diag here does
// not say which. SCTP is not checked (sock_diag needs another module).
func hostListeners(ms []netfilter.PortMapping, families []netfilter.Family) (map[int]string, error) {
	dumps := map[string][]*netlink.Socket{}
	dump := func(proto string, af uint8) ([]*netlink.Socket, error) {
		key := fmt.Sprint(proto, af)
		if socks, ok := dumps[key]; ok {
			return socks, nil
		}
		var socks []*netlink.Socket
		var err error
		if proto == "udp" {
			socks, err = netlink.SocketDiagUDP(af)
		} else {
			socks, err = netlink.SocketDiagTCP(af)
		}
		if err != nil {
			return nil, fmt.Errorf("list %s sockets over sock_diag: %v", proto, err)
		}
		dumps[key] = socks
		return socks, nil
	}
	busy := map[int]string{}
	for i, m := range ms {
		if m.Protocol != "tcp" && m.Protocol != "udp" {
			continue
		}
		for _, af := range addressFamilies(m, families) {
			socks, err := dump(m.Protocol, af)
			if err != nil {
				return nil, err
			}
			for _, s := range socks {
				if int(s.ID.SourcePort) != m.HostPort || !covers(s.ID.Source, m.HostIP) ||
					m.Protocol == "tcp" && s.State != tcpListen || m.Protocol == "udp" && s.ID.DestinationPort != 0 {
					continue
				}
				owner := socketOwner(s.INode)
				if strings.HasPrefix(owner, "process "+agentComm+",") {
					continue // the node agent holding a recorded mapping: the ledger decides
				}
				addr := net.JoinHostPort(s.ID.Source.String(), strconv.Itoa(m.HostPort))
				busy[i] = fmt.Sprintf("%s/%s (%s)", addr, m.Protocol, owner)
				break
			}
			if busy[i] != "" {
				break
			}
		}
	}
	return busy, nil
}

// addressFamilies are the socket families whose sockets can serve m in
// the attachment's families: an IPv4 mapping is served by IPv4 sockets
// and dual-stack [::] ones.
func addressFamilies(m netfilter.PortMapping, families []netfilter.Family) []uint8 {
	var out []uint8
	for _, f := range families {
		if _, ok := netfilter.HostIPFor(m, f); !ok {
			continue
		}
		if f == netfilter.IPv4 && !slices.Contains(out, uint8(unix.AF_INET)) {
			out = append(out, unix.AF_INET)
		}
		if !slices.Contains(out, uint8(unix.AF_INET6)) {
			out = append(out, unix.AF_INET6)
		}
	}
	return out
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
