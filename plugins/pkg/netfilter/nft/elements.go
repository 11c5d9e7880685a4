package nft

import (
	"net"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

func protoNum(p string) byte {
	switch p {
	case "udp":
		return unix.IPPROTO_UDP
	case "sctp":
		return unix.IPPROTO_SCTP
	}
	return unix.IPPROTO_TCP
}

func (l *layout) addrBytes(ip net.IP) []byte {
	if l.f == netfilter.IPv4 {
		return ip.To4()
	}
	return ip.To16()
}

// pad4 pads a concatenation field to the 32-bit register size.
func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func port(p int) []byte { return []byte{byte(p >> 8), byte(p)} }

func ifname(name string) []byte {
	b := make([]byte, 16)
	copy(b, name)
	return b
}

// elem is one element with the set it belongs to.
type elem struct {
	set *nftables.Set
	e   nftables.SetElement
}

// portElems are the map elements of spec in this family.
func (l *layout) portElems(spec netfilter.PortMapSpec) []elem {
	if spec.Routed {
		return l.routedElems(spec)
	}
	var out []elem
	comment := spec.Owner.Comment()
	for _, m := range spec.Mappings {
		hostIP, ok := netfilter.HostIPFor(m, l.f)
		if !ok {
			continue
		}
		val := append(append([]byte{}, l.addrBytes(spec.ContainerIP)...), pad4(port(m.ContainerPort))...)
		key := append(pad4([]byte{protoNum(m.Protocol)}), pad4(port(m.HostPort))...)
		set := l.hostPorts
		if hostIP != "" {
			key = append(append([]byte{}, l.addrBytes(m.HostIP)...), key...)
			set = l.hostPortsBound
		}
		out = append(out, elem{set, nftables.SetElement{Key: key, Val: val, Comment: comment}})
	}
	sources, _ := l.sourceElems(spec)
	out = append(out, sources...)
	if spec.SNAT && spec.MasqAll {
		out = append(out, elem{l.masqAll, nftables.SetElement{Key: l.addrBytes(spec.ContainerIP), Comment: comment}})
	}
	return out
}

// hairpinElems are the hairpin_ifs element spec relies on: its bridge.
// Shared by every container of the bridge, so tagged as base: an
// attachment's DEL leaves it, the network's last one removes it
// (DelNetwork); CHECK and the agent's probe look for it.
func (l *layout) hairpinElems(spec netfilter.PortMapSpec) []elem {
	if !spec.SNAT || spec.HairpinIf == "" || spec.Routed {
		return nil
	}
	return []elem{{l.hairpin, nftables.SetElement{Key: ifname(spec.HairpinIf), Comment: netfilter.CommentBase}}}
}

// routedElems open each mapping's container port on the container's own
// address (gatewayMode routed): no host port, no DNAT.
func (l *layout) routedElems(spec netfilter.PortMapSpec) []elem {
	var out []elem
	seen := map[string]bool{}
	for _, m := range spec.Mappings {
		if _, ok := netfilter.HostIPFor(m, l.f); !ok {
			continue
		}
		key := append(append([]byte{}, l.addrBytes(spec.ContainerIP)...), append(pad4([]byte{protoNum(m.Protocol)}), pad4(port(m.ContainerPort))...)...)
		if !seen[string(key)] {
			seen[string(key)] = true
			out = append(out, elem{l.guardOpen, nftables.SetElement{Key: key, Comment: spec.Owner.Comment()}})
		}
	}
	return out
}

func (l *layout) masqElems(spec netfilter.MasqSpec) []elem {
	comment := spec.Owner.Comment()
	a := l.addrBytes(spec.IP)
	out := []elem{
		{l.masqIPs, nftables.SetElement{Key: a, Comment: comment}},
		{l.masqLocal, nftables.SetElement{Key: append(append([]byte{}, a...), ifname(spec.Bridge)...), Comment: comment}},
	}
	for _, n := range spec.Except {
		first, last := netBounds(n)
		out = append(out, elem{l.masqExcept, nftables.SetElement{
			Key:    append(append([]byte{}, a...), l.addrBytes(first)...),
			KeyEnd: append(append([]byte{}, a...), l.addrBytes(last)...), Comment: comment}})
	}
	return out
}

// netBounds are the first and last address of n.
func netBounds(n *net.IPNet) (net.IP, net.IP) {
	first := n.IP.Mask(n.Mask)
	last := make(net.IP, len(first))
	for i := range first {
		last[i] = first[i] | ^n.Mask[i]
	}
	return first, last
}

// forwardElems are spec's elements: its address on its bridge in the
// members set, and in the set of each protection its network has.
func (l *layout) forwardElems(spec netfilter.ForwardSpec) []elem {
	comment := spec.Owner.Comment()
	key := append(append([]byte{}, l.addrBytes(spec.IP)...), ifname(spec.Bridge)...)
	out := []elem{{l.fwdMembers, nftables.SetElement{Key: key, Comment: comment}}}
	if spec.Protect {
		out = append(out, elem{l.guardProtect, nftables.SetElement{Key: l.addrBytes(spec.IP), Comment: comment}})
		for _, ifc := range spec.Trusted {
			out = append(out, elem{l.guardTrusted, nftables.SetElement{Key: append(ifname(ifc), l.addrBytes(spec.IP)...), Comment: comment}})
		}
	}
	for _, on := range []struct {
		yes bool
		set *nftables.Set
	}{{spec.Isolate, l.fwdIsolate}, {spec.NoICC, l.fwdNoICC}, {spec.IsolateOut, l.fwdIsolateOut}} {
		if on.yes {
			out = append(out, elem{on.set, nftables.SetElement{Key: key, Comment: comment}})
		}
	}
	if spec.Protect && spec.Routed {
		out = append(out, elem{l.guardICMP, nftables.SetElement{Key: l.addrBytes(spec.IP), Comment: comment}})
	}
	if spec.Guard {
		out = append(out, l.guardElem())
	}
	return out
}

// forwardDelElems are what DEL removes: spec's elements and, for an
// attachment added before the guard chain took over its drop, its
// element of fwd_protect, which no rule reads any more.
func (l *layout) forwardDelElems(spec netfilter.ForwardSpec) []elem {
	spec.Guard = false // the host's: DelForwardGuard removes it
	out := l.forwardElems(spec)
	if spec.Protect {
		key := append(append([]byte{}, l.addrBytes(spec.IP)...), ifname(spec.Bridge)...)
		out = append(out, elem{l.fwdProtect, nftables.SetElement{Key: key, Comment: spec.Owner.Comment()}})
	}
	return out
}

// sourceElems are the allowlist elements of spec's mappings in this
// family, each limited port jumping to its list's chain, and the lists.
func (l *layout) sourceElems(spec netfilter.PortMapSpec) ([]elem, []srcList) {
	var out []elem
	var lists []srcList
	comment := spec.Owner.Comment()
	seen := map[string]bool{}
	for _, m := range spec.Mappings {
		if _, ok := netfilter.HostIPFor(m, l.f); !ok {
			continue
		}
		sources, limited := m.SourcesIn(l.f)
		if !limited {
			continue
		}
		list := l.listOf(sources)
		if !seen[list.name] {
			seen[list.name] = true
			lists = append(lists, list)
		}
		key := append(pad4([]byte{protoNum(m.Protocol)}), pad4(port(m.HostPort))...)
		set := l.srcPorts
		if hostIP, _ := netfilter.HostIPFor(m, l.f); hostIP != "" {
			key, set = append(append([]byte{}, l.addrBytes(m.HostIP)...), key...), l.srcPortsBound
		}
		if seen[string(key)] {
			continue
		}
		seen[string(key)] = true
		out = append(out, elem{set, nftables.SetElement{Key: key, Comment: comment,
			VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: list.name}}})
	}
	return out, lists
}
