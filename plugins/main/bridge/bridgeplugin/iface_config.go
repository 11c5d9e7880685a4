package bridgeplugin

import (
	"fmt"
	"net"
	"syscall"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/dockernet/cni-plugins/plugins/pkg/procsys"
)

// dadTimeout bounds the wait for IPv6 duplicate address detection.
const dadTimeout = 5 * time.Second

// configureIface gives the container's interface (in the current netns)
// the result's addresses and routes and brings it up, as the reference's
// ipam.ConfigureIface does: IPv6 switched on (and addresses kept while
// down) when an IPv6 address comes, DAD awaited before the routes when
// an IPv6 gateway does, routes without a gateway via the family's first.
// Written here so bridge does not link that package, whose dependencies
// (knftables among them) cost every bridge process their start-up.
func configureIface(h *netlink.Handle, ifName string, index int, res *current.Result) error {
	link := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: index, Name: ifName}}
	var v4gw, v6gw net.IP
	ipv6On := false
	for _, ipc := range res.IPs {
		if ipc.Interface == nil {
			continue
		}
		if i := *ipc.Interface; i < 0 || i >= len(res.Interfaces) || res.Interfaces[i].Name != ifName {
			return fmt.Errorf("address %v names interface index %d, not %s", ipc.Address.String(), i, ifName)
		}
		if ipc.Address.IP.To4() == nil && !ipv6On {
			for _, dev := range []string{"lo", ifName} {
				key := fmt.Sprintf("net/ipv6/conf/%s/disable_ipv6", dev)
				if procsys.Get(key) == "1" {
					if err := procsys.Set(key, "0"); err != nil {
						return fmt.Errorf("enable IPv6 on %s: %w", dev, err)
					}
				}
			}
			if err := procsys.Set(fmt.Sprintf("net/ipv6/conf/%s/keep_addr_on_down", ifName), "1"); err != nil {
				return fmt.Errorf("keep_addr_on_down on %s: %w", ifName, err)
			}
			ipv6On = true
		}
		if err := h.AddrAdd(link, &netlink.Addr{IPNet: &ipc.Address}); err != nil {
			return fmt.Errorf("add address %s to %s: %w", ipc.Address.String(), ifName, err)
		}
		switch {
		case ipc.Gateway.To4() != nil && v4gw == nil:
			v4gw = ipc.Gateway
		case ipc.Gateway != nil && ipc.Gateway.To4() == nil && v6gw == nil:
			v6gw = ipc.Gateway
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", ifName, err)
	}
	if v6gw != nil {
		if err := settleAddresses(h, link, dadTimeout); err != nil {
			return err
		}
	}
	for _, r := range res.Routes {
		gw := r.GW
		if gw == nil {
			if r.Dst.IP.To4() != nil {
				gw = v4gw
			} else {
				gw = v6gw
			}
		}
		route := &netlink.Route{Dst: &r.Dst, LinkIndex: index, Gw: gw, Priority: r.Priority}
		if r.Table != nil {
			route.Table = *r.Table
		}
		if r.Scope != nil {
			route.Scope = netlink.Scope(*r.Scope)
		}
		if err := h.RouteAddEcmp(route); err != nil {
			return fmt.Errorf("add route %v via %v dev %s: %w", r.Dst.String(), gw, ifName, err)
		}
	}
	return nil
}

// settleAddresses waits until no IPv6 address of link is tentative; an
// address whose DAD failed is an error, and so is one still tentative
// after timeout on a link that is up.
func settleAddresses(h *netlink.Handle, link netlink.Link, timeout time.Duration) error {
	name := link.Attrs().Name
	deadline := time.Now().Add(timeout)
	for {
		addrs, err := h.AddrList(link, netlink.FAMILY_V6)
		if err != nil {
			return fmt.Errorf("list the addresses of %s: %w", name, err)
		}
		tentative := false
		for _, a := range addrs {
			if a.Flags&syscall.IFA_F_DADFAILED != 0 {
				return fmt.Errorf("%s: address %s failed duplicate address detection", name, a.IP)
			}
			tentative = tentative || a.Flags&syscall.IFA_F_TENTATIVE != 0
		}
		if !tentative {
			return nil
		}
		if time.Now().After(deadline) {
			if l, err := h.LinkByIndex(link.Attrs().Index); err == nil && l.Attrs().OperState == netlink.OperUp {
				return fmt.Errorf("%s still has tentative addresses after %v", name, timeout)
			}
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}
