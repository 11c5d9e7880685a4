package netfilter

import (
	"fmt"
	"net"
)

// PortMapping is one published port.
type PortMapping struct {
	HostIP        net.IP // nil or unspecified: every local address
	HostPort      int
	ContainerPort int
	Protocol      string // tcp, udp or sctp
	// Sources, when set, are the only source networks that reach the
	// mapping, of either family: its sourceRanges, or the network's
	// allowedSources. None of a family: no source of that family reaches it.
	Sources []*net.IPNet `json:",omitempty"`
}

// SourcesIn are m's allowed sources of family f, and whether m limits
// its sources at all.
func (m PortMapping) SourcesIn(f Family) ([]*net.IPNet, bool) {
	if len(m.Sources) == 0 {
		return nil, false
	}
	var out []*net.IPNet
	for _, n := range m.Sources {
		if FamilyOf(n.IP) == f {
			out = append(out, n)
		}
	}
	return out, true
}

func (m PortMapping) String() string {
	host := "*" // every address of both families
	switch {
	case m.HostIP == nil:
	case FamilyOf(m.HostIP) == IPv6:
		host = "[" + m.HostIP.String() + "]"
	default:
		host = m.HostIP.String()
	}
	return fmt.Sprintf("%s:%d/%s -> %d", host, m.HostPort, m.Protocol, m.ContainerPort)
}

// HostIPFor returns the host address a mapping binds in family f, whether the
// mapping applies to f at all, and "" for every local address. As with
// Docker and the reference portmap, no hostIP is every address of both
// families, 0.0.0.0 every IPv4 address only and :: every IPv6 address only.
func HostIPFor(m PortMapping, f Family) (string, bool) {
	if m.HostIP == nil {
		return "", true
	}
	if FamilyOf(m.HostIP) != f {
		return "", false
	}
	if m.HostIP.IsUnspecified() {
		return "", true
	}
	return m.HostIP.String(), true
}

// PortMapSpec is everything portmap installs for one attachment and family.
type PortMapSpec struct {
	Owner        Owner
	ContainerIP  net.IP
	ContainerNet *net.IPNet // the container's subnet: senders in it are hairpin traffic
	Mappings     []PortMapping
	SNAT         bool     // masquerade hairpin and localhost traffic
	MasqAll      bool     // masquerade every connection to the published ports
	MarkBit      int      // bit of the packet mark that asks for masquerade
	ExternalMark string   // chain that sets the masquerade mark (e.g. KUBE-MARK-MASQ)
	Conditions   []string // extra match tokens on the entry rule (conditionsV4/V6)
	HairpinIf    string   // host interface towards the container (its bridge)
	// Routed publishes each mapping's container port on the container's
	// own address instead of a host port (gatewayMode routed): no DNAT,
	// no masquerade, only the direct-routing drop spared for it.
	Routed bool `json:",omitempty"`
}

// Needs are the optional backend features spec uses.
func (s PortMapSpec) Needs() Features {
	return Features{
		Conditions:   len(s.Conditions) > 0,
		ExternalMark: s.SNAT && s.ExternalMark != "",
		AnyMarkBit:   s.SNAT && s.ExternalMark == "" && s.MarkBit != DefaultMarkBit,
	}
}

// MasqSpec is the outbound masquerade for one attachment.
type MasqSpec struct {
	Owner  Owner
	IP     net.IP // the container's address
	Bridge string // traffic leaving through this interface is not masqueraded
	// Except are destinations not masqueraded (a cluster's pod network),
	// of IP's family, none inside another.
	Except []*net.IPNet `json:",omitempty"`
	// Subnet is the container's subnet on the bridge, for the iptables
	// backend, which masquerades per network as Docker does: an ADD of a
	// network's second container writes no nat rule. Without it (the
	// nftables backend's records, iptables records written before), the
	// rules are the container's own.
	Subnet *net.IPNet `json:",omitempty"`
}

// ForwardSpec is the filter half of one attachment: what may be forwarded
// to and from one container address on its bridge.
type ForwardSpec struct {
	Owner  Owner
	IP     net.IP // the container's address
	Bridge string
	// Subnet is the container's subnet on the bridge: the iptables
	// backend's direct-routing drop is per network. Records written
	// before it have none.
	Subnet  *net.IPNet `json:",omitempty"`
	Protect bool       // drop what reaches the address from outside the bridge, unless DNATed to a published port
	// Trusted are host interfaces direct routing from which Protect
	// spares (trustedHostInterfaces: a VPN, an overlay).
	Trusted []string `json:",omitempty"`
	Isolate bool     // drop what comes from another isolated network, unless DNATed
	// IsolateOut drops what it sends to another isolated network, unless
	// DNATed, without closing it to others (gatewayMode routed, whose
	// published container ports are for everyone): without it, a routed
	// network would be a way into a nat-unprotected one.
	IsolateOut bool `json:",omitempty"`
	NoICC      bool // drop what comes from another container of the same bridge, unless DNATed
	// Guard drops forwarding that neither enters nor leaves one of the
	// backend's networks: the bridge turned the family's forwarding on,
	// and Docker does the same then. It is the host's, not the
	// attachment's: no DEL of a spec removes it (DelForwardGuard does).
	Guard bool `json:",omitempty"`
	// Routed (gatewayMode routed) spares ICMP from Protect's drop; the
	// published container ports are spared by portmap's routed specs.
	Routed bool `json:",omitempty"`
	// Mode is the bridge's gateway mode that set Protect, and ModeWhy why
	// it applies (a Kubernetes pod, the config, Docker's default): what
	// dnetctl shows and CHECK compares. The backends read neither.
	Mode    string `json:",omitempty"`
	ModeWhy string `json:",omitempty"`
}

// Family of a spec: that of the container address it is for.
func (s PortMapSpec) Family() Family { return FamilyOf(s.ContainerIP) }

// Family of a spec: that of the container address it is for.
func (s MasqSpec) Family() Family { return FamilyOf(s.IP) }

// Family of a spec: that of the container address it is for.
func (s ForwardSpec) Family() Family { return FamilyOf(s.IP) }

// Attachment is the attachment a spec belongs to.
func (s PortMapSpec) Attachment() Owner { return s.Owner }

// Attachment is the attachment a spec belongs to.
func (s MasqSpec) Attachment() Owner { return s.Owner }

// Attachment is the attachment a spec belongs to.
func (s ForwardSpec) Attachment() Owner { return s.Owner }

// Address is the container address a spec is for.
func (s PortMapSpec) Address() net.IP { return s.ContainerIP }

// Address is the container address a spec is for.
func (s MasqSpec) Address() net.IP { return s.IP }

// Address is the container address a spec is for.
func (s ForwardSpec) Address() net.IP { return s.IP }

// Ports are the published ports of a spec.
func (s PortMapSpec) Ports() []PortMapping { return s.Mappings }

// Ports: a masquerade publishes none.
func (MasqSpec) Ports() []PortMapping { return nil }

// Ports: forwarding publishes none.
func (ForwardSpec) Ports() []PortMapping { return nil }
