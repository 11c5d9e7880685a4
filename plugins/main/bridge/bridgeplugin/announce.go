package bridgeplugin

import (
	"encoding/binary"
	"net"
	"slices"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Why a new container announces its addresses.
//
// An address comes back: host-local hands it to the next container once
// the last one is gone, and that container has another MAC. The host (and
// every other container of the bridge) still has the old MAC in its
// neighbour table, REACHABLE or STALE, and sends there until the entry
// ages out: half a minute during which the new container is unreachable
// from them. So the host's entries for the new addresses go at ADD, and
// the container announces each address once it holds it: a gratuitous
// ARP request for IPv4, an unsolicited neighbour advertisement with the
// override flag for IPv6; a neighbour that had an entry takes the new MAC
// at once. Best effort: an announcement lost changes nothing else.

// Only an address that may have had an owner before is announced: one
// the IPAM plugin says is a first use (our host-local in process, before
// its round robin wraps) has no neighbour entry anywhere, and the
// broadcast, which the bridge copies to every port, cost each ADD 3.9 ms
// with 1,000 containers present (make bench-timeline, -timeline-fill).

// mayBeReused is ips without the first uses.
func mayBeReused(ips []*current.IPConfig, firstUse []net.IP) []*current.IPConfig {
	var out []*current.IPConfig
	for _, ipc := range ips {
		if !slices.ContainsFunc(firstUse, ipc.Address.IP.Equal) {
			out = append(out, ipc)
		}
	}
	return out
}

// forgetNeighbours deletes the host's neighbour entries for the
// container's addresses on the bridge, whatever MAC they hold.
func forgetNeighbours(h *netlink.Handle, br netlink.Link, ips []*current.IPConfig) {
	for _, ipc := range ips {
		_ = h.NeighDel(&netlink.Neigh{LinkIndex: br.Attrs().Index, IP: ipc.Address.IP})
	}
}

// announce sends, in the container's netns, one announcement per address
// of ips out of ifc, once ifc can send.
func announce(h *netlink.Handle, ifc net.Interface, ips []*current.IPConfig) {
	if len(ips) == 0 {
		return
	}
	waitOperUp(h, ifc.Index)
	for _, ipc := range ips {
		if ip4 := ipc.Address.IP.To4(); ip4 != nil {
			_ = gratuitousARP(ifc, ip4)
		} else {
			_ = unsolicitedNA(ifc, ipc.Address.IP)
		}
	}
}

// gratuitousARP broadcasts an ARP request for ip from ip (RFC 5227's
// announcement), which Linux takes to update an entry it has.
func gratuitousARP(ifc net.Interface, ip net.IP) error {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	pkt := make([]byte, 28)
	binary.BigEndian.PutUint16(pkt[0:], 1)             // hardware: Ethernet
	binary.BigEndian.PutUint16(pkt[2:], unix.ETH_P_IP) // protocol: IPv4
	pkt[4], pkt[5] = 6, 4
	binary.BigEndian.PutUint16(pkt[6:], 1) // request
	copy(pkt[8:14], ifc.HardwareAddr)
	copy(pkt[14:18], ip)
	copy(pkt[24:28], ip) // target: the same address; target MAC zero
	to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifc.Index, Halen: 6,
		Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	return unix.Sendto(fd, pkt, 0, to)
}

// unsolicitedNA sends a neighbour advertisement for ip with the override
// flag and the interface's MAC to all nodes (RFC 4861 7.2.6). The kernel
// computes an ICMPv6 raw socket's checksum; hop limit 255 is required.
func unsolicitedNA(ifc net.Interface, ip net.IP) error {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255); err != nil {
		return err
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifc.Index); err != nil {
		return err
	}
	pkt := make([]byte, 32)
	pkt[0] = 136  // neighbour advertisement
	pkt[4] = 0x20 // override
	copy(pkt[8:24], ip.To16())
	pkt[24], pkt[25] = 2, 1 // option: target link-layer address, 8 bytes
	copy(pkt[26:32], ifc.HardwareAddr)
	to := &unix.SockaddrInet6{ZoneId: uint32(ifc.Index)}
	copy(to.Addr[:], net.IPv6linklocalallnodes)
	return unix.Sendto(fd, pkt, 0, to)
}

// operUpWait bounds waitOperUp: past it the announcement goes anyway.
const operUpWait = 200 * time.Millisecond

// waitOperUp waits until the link with index can send. A veth whose ends
// are both up has its carrier at once, but the kernel attaches its
// transmit queue later, in the link-watch work (which needs the RTNL lock,
// so any other link change on the machine, such as a retired pair being
// deleted, delays it); until then every frame sent is dropped without an
// error. The operational state turns up in the same step.
func waitOperUp(h *netlink.Handle, index int) {
	for deadline := time.Now().Add(operUpWait); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if l, err := h.LinkByIndex(index); err != nil || l.Attrs().OperState == netlink.OperUp {
			return
		}
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
