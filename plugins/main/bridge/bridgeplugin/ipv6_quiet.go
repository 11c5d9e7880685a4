package bridgeplugin

import (
	"errors"
	"fmt"
	"io/fs"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/dockernet/cni-plugins/plugins/pkg/procsys"
)

// Why IPv6 is switched off on some interfaces.
//
// An interface with IPv6 enabled gets a link-local address as soon as it
// is up and then sends multicast: DAD, MLD reports, router solicitations
// (retried for as long as it lives). A bridge without a multicast querier
// floods each of those to every port, so with many containers each new one
// costs the kernel a delivery into every other namespace, and a busy
// bridge never goes quiet. Two interfaces need no IPv6 at all:
//   - the host end of the veth: a bridge port does no layer 3 (the
//     bridge takes every frame it receives), so it only has to send
//     nothing: no link-local address is made for it (addrgenmode none),
//     and without an address it sends no DAD, MLD report or router
//     solicitation. One netlink request by index, where disable_ipv6 is
//     a /proc/sys path walk whose cost grows with the network namespaces
//     on the machine (procsys): 1.8 ms of each ADD with 1,000 containers
//     present (make bench-timeline, -timeline-fill 1000);
//   - the container's interface when the attachment has no IPv6 address,
//     which is what Docker does on an IPv4-only network. The container's
//     lo keeps IPv6, so ::1 still works. "keepIPv6LinkLocal" keeps the
//     reference plugin's behaviour (link-local IPv6 on every interface).

// quietBridgePort keeps a bridge port, still down, from ever having an
// IPv6 address of its own. A kernel without IPv6 has nothing to quiet.
func quietBridgePort(h *netlink.Handle, port netlink.Link) error {
	err := h.LinkSetIP6AddrGenMode(port, nl.IN6_ADDR_GEN_MODE_NONE)
	if errors.Is(err, unix.EAFNOSUPPORT) {
		return nil
	}
	return err
}

// disableIPv6 turns IPv6 off on one interface of the current netns. A
// kernel without IPv6 has nothing to turn off.
func disableIPv6(ifName string) error {
	err := procsys.Set(fmt.Sprintf("net/ipv6/conf/%s/disable_ipv6", ifName), "1")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// skipDAD makes ifName (in the current netns) use its IPv6 addresses at
// once: the address is ours, and waiting for DAD delays the container's
// IPv6 by a second or more. Set before the link goes up; not needed where
// IPv6 is disabled.
func skipDAD(n *NetConf, ifName string) {
	if !n.EnableDad {
		_ = procsys.Set(fmt.Sprintf("net/ipv6/conf/%s/accept_dad", ifName), "0")
	}
}

// hasIPv6 reports whether the IPAM result gives the container an IPv6 address.
func hasIPv6(res *current.Result) bool {
	for _, ipc := range res.IPs {
		if ipc.Address.IP.To4() == nil {
			return true
		}
	}
	return false
}
