package netfilter

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// FlushUDP deletes the conntrack entries of UDP traffic to the host ports
// of the UDP mappings in ms. UDP "connections" live on in conntrack after
// their rules change: a stale entry would keep sending a client's datagrams
// where they went before the mapping was added (or removed).
func FlushUDP(f Family, ms []PortMapping) error {
	var ports []int
	for _, m := range ms {
		if m.Protocol == "udp" {
			ports = append(ports, m.HostPort)
		}
	}
	if len(ports) == 0 {
		return nil
	}
	fam := netlink.FAMILY_V4
	if f == IPv6 {
		fam = netlink.FAMILY_V6
	}
	var filters []netlink.CustomConntrackFilter
	for _, p := range ports {
		flt := &netlink.ConntrackFilter{}
		if err := flt.AddProtocol(unix.IPPROTO_UDP); err != nil {
			return err
		}
		if err := flt.AddPort(netlink.ConntrackOrigDstPort, uint16(p)); err != nil {
			return err
		}
		filters = append(filters, flt)
	}
	if _, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, netlink.InetFamily(fam), filters...); err != nil {
		return fmt.Errorf("flush UDP conntrack entries for ports %v: %w", ports, err)
	}
	return nil
}
