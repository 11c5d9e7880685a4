package ctl

import (
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter/describe"
)

// Query is a published port to explain: the host port, and optionally its
// protocol and host address.
type Query struct {
	Port  int
	Proto string // "" for every protocol
	Addr  net.IP // nil for every address
}

// published is one mapping of one attachment that answers a Query.
type published struct {
	spec    netfilter.PortMapSpec
	m       netfilter.PortMapping
	backend string
	mode    string // the bridge's gateway mode and why ("" without a forwarding record)
	modeWhy string
}

// Explain prints the path a packet to the published port takes on this
// host now, hop by hop, from the records and the live kernel state: the
// seed's walk-through of `docker run -p`, for the live system.
func Explain(w io.Writer, env attachment.Env, q Query) error {
	as, err := Load(env)
	if err != nil {
		return err
	}
	var found []published
	for _, a := range as {
		for _, p := range a.mappings() {
			m := p.m
			if m.HostPort != q.Port || (q.Proto != "" && m.Protocol != q.Proto) {
				continue
			}
			if q.Addr != nil && m.HostIP != nil && !m.HostIP.IsUnspecified() && !m.HostIP.Equal(q.Addr) {
				continue
			}
			found = append(found, p)
		}
	}
	if len(found) == 0 {
		what := strconv.Itoa(q.Port)
		if q.Proto != "" {
			what += "/" + q.Proto
		}
		return fmt.Errorf("host port %s is not published by any recorded attachment (dnetctl list shows what is; -state-dir if the network sets stateDir)", what)
	}
	for i, p := range found {
		if i > 0 {
			fmt.Fprintln(w)
		}
		p.explain(w)
	}
	return nil
}

func (p published) explain(w io.Writer) {
	m, spec, o := p.m, p.spec, p.spec.Owner
	v6 := spec.ContainerIP.To4() == nil
	host := "every local address"
	if m.HostIP != nil && !m.HostIP.IsUnspecified() {
		host = m.HostIP.String()
	}
	dst := net.JoinHostPort(spec.ContainerIP.String(), strconv.Itoa(m.ContainerPort))
	fmt.Fprintf(w, "%d/%s on %s -> %s: container %s, interface %s, network %s (backend %s)\n",
		m.HostPort, m.Protocol, host, dst, shortID(o.ContainerID), o.IfName, o.Network, p.backend)

	hop := func(n int, title string) { fmt.Fprintf(w, "\n%d. %s\n", n, title) }
	lines := func(ls []string) {
		for _, l := range ls {
			fmt.Fprintf(w, "   %s\n", l)
		}
	}
	routes, routeErr := netlink.RouteGet(spec.ContainerIP)
	bridge := spec.HairpinIf
	if bridge == "" && routeErr == nil && len(routes) > 0 {
		bridge = linkName(routes[0].LinkIndex)
	}
	state := describe.Mapping(p.backend, spec, m, bridge)

	hop(1, "DNAT: nat PREROUTING (from outside) and OUTPUT (from this host) send a packet to a local address to the published ports")
	if len(state.DNAT) == 0 {
		state.DNAT = []string{"MISSING: nothing in the kernel DNATs this port (dnetctl restore puts it back)"}
	}
	lines(state.DNAT)
	fmt.Fprintf(w, "   => the destination becomes %s\n", dst)

	hop(2, "Routing after DNAT")
	if routeErr == nil && len(routes) > 0 {
		fmt.Fprintf(w, "   %s dev %s src %s\n", spec.ContainerIP, linkName(routes[0].LinkIndex), routes[0].Src)
	} else {
		fmt.Fprintf(w, "   no route to %s: %v\n", spec.ContainerIP, routeErr)
	}

	hop(3, "The bridge hands it to the container's port")
	veth := p.bridgePort(w, bridge)

	hop(4, "The veth pair into the container")
	if l, err := netlink.LinkByName(veth); err == nil {
		fmt.Fprintf(w, "   %s (host side, ifindex %d, on %s) <-> %s in the container's netns (its ifindex %d, netns id %d)\n",
			veth, l.Attrs().Index, linkName(l.Attrs().MasterIndex), o.IfName, l.Attrs().ParentIndex, l.Attrs().NetNsID)
	} else {
		fmt.Fprintf(w, "   host veth %s: %v\n", veth, err)
	}

	hop(5, "FORWARD: what the filter half lets through (its drops spare DNATed connections)")
	if p.mode != "" {
		reach := "from outside its bridge, only the published ports reach the container"
		switch p.mode {
		case "nat-unprotected":
			reach = "the container is reachable by address from outside its bridge too"
		case "isolated":
			reach = "nothing from outside its bridge reaches the container"
		}
		fmt.Fprintf(w, "   gatewayMode %s (%s): %s\n", p.mode, p.modeWhy, reach)
	}
	lines(state.Forward)

	hop(6, "The way back: conntrack undoes the DNAT on replies; masquerade where the reply would otherwise miss it")
	switch {
	case spec.MasqAll:
		fmt.Fprintln(w, "   every connection to this port is masqueraded (masqAll): the container sees the host's address")
	case spec.SNAT:
		fmt.Fprintf(w, "   connections from the host itself (127.0.0.1) and hairpin connections from %s are masqueraded; others keep their source\n", bridge)
	default:
		fmt.Fprintln(w, "   snat is off: no masquerade for hairpin or localhost connections")
	}
	lines(state.Masq)

	hop(7, "Connections now (conntrack)")
	p.conntrack(w, v6)
}

// bridgePort finds the bridge port behind which the container's address
// is: its neighbour entry gives the MAC, the bridge's forwarding database
// the port. Without a neighbour entry (no traffic lately) the recorded
// veth name stands in. It returns the host veth's name.
func (p published) bridgePort(w io.Writer, bridge string) string {
	byRecord := p.spec.Owner.HostVeth()
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		fmt.Fprintf(w, "   bridge %s: %v\n", bridge, err)
		return byRecord
	}
	family := netlink.FAMILY_V4
	if p.spec.ContainerIP.To4() == nil {
		family = netlink.FAMILY_V6
	}
	neighs, _ := netlink.NeighList(br.Attrs().Index, family)
	var mac net.HardwareAddr
	for _, n := range neighs {
		if n.IP.Equal(p.spec.ContainerIP) && len(n.HardwareAddr) > 0 {
			mac = n.HardwareAddr
		}
	}
	if mac == nil {
		fmt.Fprintf(w, "   %s: no neighbour entry for %s yet (no traffic lately); its port by record: %s\n", bridge, p.spec.ContainerIP, byRecord)
		return byRecord
	}
	fdb, _ := netlink.NeighList(0, unix.AF_BRIDGE)
	for _, e := range fdb {
		if e.MasterIndex == br.Attrs().Index && e.HardwareAddr.String() == mac.String() {
			port := linkName(e.LinkIndex)
			fmt.Fprintf(w, "   %s: %s is at %s (neighbour table), learnt on port %s (forwarding database)\n", bridge, p.spec.ContainerIP, mac, port)
			return port
		}
	}
	fmt.Fprintf(w, "   %s: %s is at %s; no forwarding entry for it yet; its port by record: %s\n", bridge, p.spec.ContainerIP, mac, byRecord)
	return byRecord
}

// conntrack prints the connections to this published port that are
// tracked now, as conntrack -L would.
func (p published) conntrack(w io.Writer, v6 bool) {
	family := netlink.InetFamily(unix.AF_INET)
	if v6 {
		family = netlink.InetFamily(unix.AF_INET6)
	}
	flows, err := netlink.ConntrackTableList(netlink.ConntrackTable, family)
	if err != nil {
		fmt.Fprintf(w, "   conntrack: %v\n", err)
		return
	}
	proto := map[string]uint8{"tcp": unix.IPPROTO_TCP, "udp": unix.IPPROTO_UDP, "sctp": unix.IPPROTO_SCTP}[p.m.Protocol]
	n := 0
	for _, f := range flows {
		if f.Forward.Protocol != proto || f.Forward.DstPort != uint16(p.m.HostPort) ||
			!f.Reverse.SrcIP.Equal(p.spec.ContainerIP) || f.Reverse.SrcPort != uint16(p.m.ContainerPort) {
			continue
		}
		n++
		if n <= 10 {
			fmt.Fprintf(w, "   %s %s:%d -> %s:%d, reply %s:%d -> %s:%d, %d s left\n", p.m.Protocol,
				f.Forward.SrcIP, f.Forward.SrcPort, f.Forward.DstIP, f.Forward.DstPort,
				f.Reverse.SrcIP, f.Reverse.SrcPort, f.Reverse.DstIP, f.Reverse.DstPort, f.TimeOut)
		}
	}
	switch {
	case n == 0:
		fmt.Fprintln(w, "   none")
	case n > 10:
		fmt.Fprintf(w, "   … %d in all\n", n)
	}
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func linkName(index int) string {
	if l, err := netlink.LinkByIndex(index); err == nil {
		return l.Attrs().Name
	}
	return "ifindex " + strconv.Itoa(index)
}

// runExplain is `dnetctl explain [-proto P] [-addr IP] PORT`.
func runExplain(env attachment.Env, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	proto := fs.String("proto", "", "tcp, udp or sctp (default: each that is published)")
	addr := fs.String("addr", "", "the host address the packet is sent to (default: any)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	port, err := strconv.Atoi(fs.Arg(0))
	if fs.NArg() != 1 || err != nil || port < 1 || port > 65535 {
		fmt.Fprintln(stderr, "usage: dnetctl explain [-proto tcp|udp|sctp] [-addr IP] PORT")
		return 2
	}
	q := Query{Port: port, Proto: *proto}
	if *addr != "" {
		if q.Addr = net.ParseIP(*addr); q.Addr == nil {
			fmt.Fprintf(stderr, "dnetctl explain: -addr %q is not an IP address\n", *addr)
			return 2
		}
	}
	if err := Explain(stdout, env, q); err != nil {
		fmt.Fprintln(stderr, "dnetctl explain:", err)
		return 1
	}
	return 0
}
