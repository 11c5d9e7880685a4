package bridgeplugin

import (
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
)

// The container side of CHECK, in the container's netns: what the
// reference validates with pkg/ip, written here so bridge does not link
// that package (see configureIface).

// vethPeerIndex is the host-side index of veth ifName's peer.
func vethPeerIndex(ifName string) (int, error) {
	l, err := netlink.LinkByName(ifName)
	if err != nil {
		return -1, err
	}
	if _, ok := l.(*netlink.Veth); !ok {
		return -1, fmt.Errorf("%s is a %s, not a veth", ifName, l.Type())
	}
	if l.Attrs().ParentIndex <= 0 {
		return -1, fmt.Errorf("the kernel names no peer of veth %s", ifName)
	}
	return l.Attrs().ParentIndex, nil
}

// checkAddresses: each address of ips is on ifName, and its prefix is routed.
func checkAddresses(ifName string, ips []*current.IPConfig) error {
	link, err := netlink.LinkByName(ifName)
	if err != nil {
		return fmt.Errorf("container interface %s is missing: %v", ifName, err)
	}
	have, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list the addresses of %s: %v", ifName, err)
	}
	for _, ipc := range ips {
		want := netlink.Addr{IPNet: &ipc.Address}
		found := false
		for _, a := range have {
			found = found || a.Equal(want)
		}
		if !found {
			return fmt.Errorf("address %s is missing on %s", ipc.Address.String(), ifName)
		}
		prefix := &net.IPNet{IP: ipc.Address.IP.Mask(ipc.Address.Mask), Mask: ipc.Address.Mask}
		routes, err := netlink.RouteListFiltered(family(ipc.Address.IP), &netlink.Route{Dst: prefix}, netlink.RT_FILTER_DST)
		if err != nil {
			return fmt.Errorf("look up the route to %s: %v", prefix, err)
		}
		if len(routes) == 0 {
			return fmt.Errorf("no route to %s, the prefix of %s on %s", prefix, ipc.Address.String(), ifName)
		}
	}
	return nil
}

// checkRoutes: each route of the result is in the main table.
func checkRoutes(routes []*types.Route) error {
	for _, r := range routes {
		if r.Dst.IP.To4() == nil && len(r.Dst.IP) != net.IPv6len {
			return fmt.Errorf("invalid route %v", r)
		}
		find, filter := &netlink.Route{Dst: &r.Dst, Gw: r.GW}, netlink.RT_FILTER_DST
		if r.GW != nil {
			filter |= netlink.RT_FILTER_GW
		}
		if ones, _ := r.Dst.Mask.Size(); ones == 0 { // the default route has no Dst
			find, filter = &netlink.Route{Gw: r.GW}, netlink.RT_FILTER_DST
		}
		found, err := netlink.RouteListFiltered(family(r.Dst.IP), find, filter)
		if err != nil {
			return fmt.Errorf("look up route %v: %v", r, err)
		}
		if len(found) == 0 {
			return fmt.Errorf("route %v is missing", r)
		}
	}
	return nil
}

func family(ip net.IP) int {
	if ip.To4() != nil {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}
