package attachment

import "github.com/dockernet/cni-plugins/plugins/pkg/netfilter"

// Masquerade is bridge's ipMasq: outbound masquerade of each container address.
var Masquerade = Kind[netfilter.MasqSpec]{
	Name:   "masq",
	Plugin: "bridge: ipMasq",
	Add:    netfilter.Backend.AddMasquerade,
	Del:    netfilter.Backend.DelMasquerade,
	Check:  netfilter.Backend.CheckMasquerade,
}

// PortMappings is portmap's host ports. Each change also drops the UDP
// conntrack entries of its host ports: a UDP "connection" outlives its
// rules, and would keep sending a client's datagrams where they went before.
var PortMappings = Kind[netfilter.PortMapSpec]{
	Name:   "portmap",
	Plugin: "portmap",
	Add: func(be netfilter.Backend, s netfilter.PortMapSpec) error {
		if err := be.AddPortMappings(s); err != nil {
			return err
		}
		return netfilter.FlushUDP(be.Family(), s.Mappings)
	},
	Del: func(be netfilter.Backend, s netfilter.PortMapSpec) error {
		if err := be.DelPortMappings(s); err != nil {
			return err
		}
		return netfilter.FlushUDP(be.Family(), s.Mappings)
	},
	Check: netfilter.Backend.CheckPortMappings,
}

// Forwarding is bridge's filter half: what may be forwarded to and from
// each container address (direct-routing protection, isolation, icc).
var Forwarding = Kind[netfilter.ForwardSpec]{
	Name:   "forward",
	Plugin: "bridge: forwarding rules",
	Add:    netfilter.Backend.AddForward,
	Del:    netfilter.Backend.DelForward,
	Check:  netfilter.Backend.CheckForward,
}
