package bridgeplugin

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// makeVeth creates the veth pair from inside the container netns: contName
// there, hostName in hostNS, both down. It is ip.SetupVethWithName without
// two things: bringing the host end up (setupVeth does that once the port
// is on the bridge and without IPv6) and the accept_ra write on the host
// end, which has IPv6 switched off anyway. Each /proc/sys access costs a
// path lookup that grows with the network namespaces on the machine.
func makeVeth(h *netlink.Handle, contName, hostName string, mtu int, mac string, hostNS ns.NetNS) (net.Interface, error) {
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MTU = contName, mtu
	if mac != "" {
		hw, err := net.ParseMAC(mac)
		if err != nil {
			return net.Interface{}, fmt.Errorf("container MAC %q: %w", mac, err)
		}
		attrs.HardwareAddr = hw
	}
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: hostName, PeerNamespace: netlink.NsFd(int(hostNS.Fd()))}
	if err := h.LinkAdd(veth); err != nil {
		if errors.Is(err, syscall.EEXIST) {
			return net.Interface{}, fmt.Errorf("veth %s (host end %s) already exists", contName, hostName)
		}
		return net.Interface{}, err
	}
	// Re-read for what the kernel chose: index, MAC, MTU.
	l, err := h.LinkByName(contName)
	if err != nil {
		_ = h.LinkDel(veth)
		return net.Interface{}, err
	}
	return iface(l), nil
}

func iface(l netlink.Link) net.Interface {
	a := l.Attrs()
	return net.Interface{Index: a.Index, MTU: a.MTU, Name: a.Name, HardwareAddr: a.HardwareAddr, Flags: a.Flags}
}

// errLinkNotFound is delLinkByName's "nothing to delete".
var errLinkNotFound = errors.New("link not found")

// delLinkByName deletes the link called name in h's netns.
func delLinkByName(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		var missing netlink.LinkNotFoundError
		if errors.As(err, &missing) {
			return errLinkNotFound
		}
		return fmt.Errorf("look up %s: %w", name, err)
	}
	if err := h.LinkDel(l); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}
