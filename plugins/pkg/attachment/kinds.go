package attachment

import "github.com/dockernet/cni-plugins/plugins/pkg/netfilter"

// Masquerade is bridge's ipMasq: outbound masquerade of each container address.
var Masquerade = Kind[netfilter.MasqSpec]{
	Name:   "masq",
	Plugin: "bridge: ipMasq",
	Add:    netfilter.Backend.AddMasquerade,
	Del:    netfilter.Backend.DelMasquerade,
	Check:  netfilter.Backend.CheckMasquerade,
	// The iptables backend's rules are the network's (a record without a
	// subnet: the container's own).
	Network: func(s netfilter.MasqSpec) string {
		if s.Subnet != nil {
			return s.Bridge
		}
		return ""
	},
}

// PortMappings is portmap's host ports. Each change also drops the UDP
// conntrack entries of its host ports: a UDP "connection" outlives its
// rules, and would keep sending a client's datagrams where they went before.
var PortMappings = Kind[netfilter.PortMapSpec]{
	Name:   "portmap",
	Plugin: "portmap",
	Add:    netfilter.Backend.AddPortMappings,
	Del:    netfilter.Backend.DelPortMappings,
	Check:  netfilter.Backend.CheckPortMappings,
	// The hairpin_ifs element of its bridge (nftables).
	Network: func(s netfilter.PortMapSpec) string {
		if s.SNAT && !s.Routed {
			return s.HairpinIf
		}
		return ""
	},
	FlushUDP: true,
}

// Forwarding is bridge's filter half: what may be forwarded to and from
// each container address (direct-routing protection, isolation, icc).
var Forwarding = Kind[netfilter.ForwardSpec]{
	Name:   "forward",
	Plugin: "bridge: forwarding rules",
	Add:    netfilter.Backend.AddForward,
	Del:    netfilter.Backend.DelForward,
	Check:  netfilter.Backend.CheckForward,
	// The network's accepts, drops and guard exceptions.
	Network: func(s netfilter.ForwardSpec) string { return s.Bridge },
}

// Kinds are every kind of per-attachment netfilter state, in the order a
// restore reinstalls them: what GC, dnetctl list, check and restore visit.
var Kinds = []AnyKind{Masquerade, Forwarding, PortMappings}
