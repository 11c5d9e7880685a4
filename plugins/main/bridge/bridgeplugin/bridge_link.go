package bridgeplugin

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ensureBridge returns the bridge, creating it when absent. Concurrent ADDs
// may race to create it; the loser finds the winner's bridge.
func ensureBridge(h *netlink.Handle, name string, mtu int, promisc bool) (*netlink.Bridge, error) {
	br, err := findBridge(h, name)
	if err == nil {
		return br, setupBridge(h, br, promisc)
	}
	var notFound netlink.LinkNotFoundError
	if !errors.As(err, &notFound) {
		return nil, err
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = name
	attrs.MTU = mtu
	// The kernel would give the bridge the lowest MAC of its ports, changing
	// as containers come and go; a fixed random MAC keeps neighbours' caches valid.
	attrs.HardwareAddr = randomMAC()
	newBr := &netlink.Bridge{LinkAttrs: attrs}
	if err := h.LinkAdd(newBr); err != nil && !errors.Is(err, syscall.EEXIST) {
		return nil, fmt.Errorf("create bridge %s: %w", name, err)
	}
	if br, err = findBridge(h, name); err != nil {
		return nil, err
	}
	return br, setupBridge(h, br, promisc)
}

func setupBridge(h *netlink.Handle, br *netlink.Bridge, promisc bool) error {
	if promisc && br.Promisc == 0 {
		if err := h.SetPromiscOn(br); err != nil {
			return fmt.Errorf("set promiscuous mode on %s: %w", br.Name, err)
		}
	}
	if br.Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(br); err != nil {
			return fmt.Errorf("bring bridge %s up: %w", br.Name, err)
		}
	}
	return nil
}

func findBridge(h *netlink.Handle, name string) (*netlink.Bridge, error) {
	l, err := h.LinkByName(name)
	if err != nil {
		return nil, err
	}
	br, ok := l.(*netlink.Bridge)
	if !ok {
		return nil, fmt.Errorf("interface %s exists but is a %s, not a bridge: pick another \"bridge\" name", name, l.Type())
	}
	return br, nil
}

// primaryIPv4Is reports whether the primary IPv4 address of the interface
// is gw, with gw's prefix. Two ioctls on the one interface, where an
// address dump (netlink.AddrList) walks every interface of the netns and
// so grows with the containers present. AddrList would return this
// address first, and ensureGatewayAddr stops at it.
func primaryIPv4Is(name string, gw *net.IPNet) bool {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	get := func(req uint) net.IP {
		ifr, err := unix.NewIfreq(name)
		if err != nil || unix.IoctlIfreq(fd, req, ifr) != nil {
			return nil
		}
		b, err := ifr.Inet4Addr()
		if err != nil {
			return nil
		}
		return net.IP(b)
	}
	addr, mask := get(unix.SIOCGIFADDR), get(unix.SIOCGIFNETMASK)
	if addr == nil || mask == nil {
		return false
	}
	got := net.IPNet{IP: addr, Mask: net.IPMask(mask.To4())}
	return got.String() == gw.String()
}

func randomMAC() net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	_, _ = rand.Read(mac)
	mac[0] = (mac[0] | 0x02) & 0xfe // locally administered, unicast
	return mac
}

// ensureGatewayAddr puts the gateway address on the bridge. An IPv4 bridge
// holds one address; a different one is an error unless forceAddress.
func ensureGatewayAddr(h *netlink.Handle, br netlink.Link, gw *net.IPNet, force bool) error {
	if gw.IP.To4() != nil && primaryIPv4Is(br.Attrs().Name, gw) {
		return nil // what every ADD after the first finds
	}
	addrs, err := h.AddrList(br, family(gw.IP))
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", br.Attrs().Name, err)
	}
	for _, a := range addrs {
		if a.IPNet.String() == gw.String() {
			return nil
		}
		if gw.IP.To4() != nil || a.IPNet.Contains(gw.IP) || gw.Contains(a.IP) {
			if !force {
				return fmt.Errorf("bridge %s already has address %s, not %s: set \"forceAddress\": true to replace it, or use another bridge", br.Attrs().Name, a.IPNet, gw)
			}
			if err := h.AddrDel(br, &a); err != nil {
				return fmt.Errorf("remove %s from %s: %w", a.IPNet, br.Attrs().Name, err)
			}
		}
	}
	if err := h.AddrAdd(br, &netlink.Addr{IPNet: gw}); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("add %s to bridge %s: %w", gw, br.Attrs().Name, err)
	}
	return nil
}
