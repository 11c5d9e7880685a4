package install

import (
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
)

// Host is what the installer asks of the host it installs on.
type Host interface {
	// LinkExists says whether a link of that name is on the host.
	LinkExists(name string) bool
	// InUse lists the host's networks (addresses' and routes' prefixes,
	// default routes left out), each with the link it is on.
	InUse() ([]Prefix, error)
}

// Prefix is a network the host already uses, and where.
type Prefix struct {
	Net  *net.IPNet
	Link string
}

type choice struct{ bridge, subnet string }

// choose decides the bridge and subnet. An explicit one is kept as given
// (an explicit subnet must not overlap the host's other networks); a
// previous install of the same network keeps its choice, so a rerun
// changes nothing; otherwise the template's, unless another owner already
// uses its bridge name or subnet, as Docker does docker0 and 172.17.0.0/16:
// two address managers on one subnet hand out the same addresses.
func choose(o Options, c *conflist, target string, host Host) (choice, error) {
	ch := choice{bridge: c.bridge, subnet: c.subnet}
	previous := previousChoice(target, c.name)
	if previous != nil {
		ch = *previous
	}
	if o.Bridge != "" {
		ch.bridge = o.Bridge
	}
	if o.Subnet != "" {
		_, n, err := net.ParseCIDR(o.Subnet)
		if err != nil {
			return ch, fmt.Errorf("subnet %q: %w", o.Subnet, err)
		}
		ch.subnet = n.String()
	}
	if previous != nil && o.Bridge == "" && o.Subnet == "" {
		return ch, nil
	}
	inUse, err := host.InUse()
	if err != nil {
		return ch, fmt.Errorf("listing the host's addresses and routes: %w", err)
	}

	var why []string
	if o.Bridge == "" && host.LinkExists(ch.bridge) {
		why = append(why, fmt.Sprintf("a link named %s is already on this host", ch.bridge))
		ch.bridge = freeBridge(host)
	}
	if user := overlap(ch.subnet, inUse, ch.bridge); user != "" {
		if o.Subnet != "" {
			return ch, fmt.Errorf("subnet %s overlaps %s, already on this host: two address managers on one subnet hand out the same addresses; give the node a pod CIDR of its own, or free %s", ch.subnet, user, user)
		}
		why = append(why, fmt.Sprintf("%s is already in use (%s)", ch.subnet, user))
		free, ok := freeSubnet(inUse, ch.bridge)
		if !ok {
			return ch, fmt.Errorf("%s is already in use (%s) and none of 172.18.0.0/16 to 172.31.0.0/16 is free; choose one: dnetctl install -subnet CIDR", c.subnet, user)
		}
		ch.subnet = free
	}
	if len(why) > 0 {
		fmt.Fprintf(o.Log, "install: %s (Docker's?); network %s uses bridge %s and %s instead. To choose yourself: -bridge NAME -subnet CIDR\n",
			strings.Join(why, " and "), c.name, ch.bridge, ch.subnet)
	}
	return ch, nil
}

// previousChoice reads what an earlier install of the same network wrote.
func previousChoice(path, network string) *choice {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	prev, err := parseConflist(data)
	if err != nil || prev.name != network {
		return nil
	}
	return &choice{bridge: prev.bridge, subnet: prev.subnet}
}

// overlap names the first of the host's networks that overlaps subnet,
// ignoring those on our own bridge.
func overlap(subnet string, inUse []Prefix, ownBridge string) string {
	_, n, err := net.ParseCIDR(subnet)
	if err != nil {
		return ""
	}
	for _, p := range inUse {
		if p.Link == ownBridge {
			continue
		}
		if n.Contains(p.Net.IP) || p.Net.Contains(n.IP) {
			return fmt.Sprintf("%s on %s", p.Net, p.Link)
		}
	}
	return ""
}

func freeBridge(host Host) string {
	for i := 0; ; i++ {
		name := fmt.Sprintf("dnet%d", i)
		if !host.LinkExists(name) {
			return name
		}
	}
}

// freeSubnet is the first of 172.18.0.0/16 … 172.31.0.0/16 (the private
// range Docker also picks its networks from) that the host does not use.
func freeSubnet(inUse []Prefix, ownBridge string) (string, bool) {
	for i := 18; i <= 31; i++ {
		s := fmt.Sprintf("172.%d.0.0/16", i)
		if overlap(s, inUse, ownBridge) == "" {
			return s, true
		}
	}
	return "", false
}

// NetlinkHost is the host the calling process's netns is.
type NetlinkHost struct{}

func (NetlinkHost) LinkExists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

func (NetlinkHost) InUse() ([]Prefix, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	names := map[int]string{}
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	var out []Prefix
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if a.IPNet != nil && !a.IP.IsLoopback() && !a.IP.IsLinkLocalUnicast() {
			n := &net.IPNet{IP: a.IP.Mask(a.Mask), Mask: a.Mask}
			out = append(out, Prefix{Net: n, Link: names[a.LinkIndex]})
		}
	}
	routes, err := netlink.RouteList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, err
	}
	for _, r := range routes {
		if r.Dst == nil || isDefault(r.Dst) || r.Dst.IP.IsLoopback() || r.Dst.IP.IsLinkLocalUnicast() {
			continue
		}
		out = append(out, Prefix{Net: r.Dst, Link: names[r.LinkIndex]})
	}
	return out, nil
}

func isDefault(n *net.IPNet) bool {
	ones, _ := n.Mask.Size()
	return ones == 0
}
