package bridgeplugin

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter/host"
)

// DefaultBridge is the reference plugin's default bridge name.
const DefaultBridge = "cni0"

// NetConf is the bridge plugin's config, with the reference plugin's keys.
type NetConf struct {
	types.NetConf
	BrName        string `json:"bridge"`
	IsGW          bool   `json:"isGateway"`
	IsDefaultGW   bool   `json:"isDefaultGateway"`
	ForceAddress  bool   `json:"forceAddress"`
	IPMasq        bool   `json:"ipMasq"`
	IPMasqBackend string `json:"ipMasqBackend,omitempty"`
	// NonMasqueradeCIDRs (extension, ip-masq-agent's name) are destinations
	// that ipMasq leaves alone: a cluster's pod network, whose pods must
	// see each other's addresses (Kubernetes' network model).
	NonMasqueradeCIDRs []string `json:"nonMasqueradeCIDRs,omitempty"`
	nonMasq            []*net.IPNet
	// StateDir (extension) holds the per-attachment records DEL reads.
	StateDir string `json:"stateDir,omitempty"`
	// Debug (extension) says on stderr what was chosen without being
	// asked; otherwise a success is silent unless it changed the host.
	Debug         bool `json:"debug,omitempty"`
	MTU           int  `json:"mtu"`
	HairpinMode   bool `json:"hairpinMode"`
	PromiscMode   bool `json:"promiscMode"`
	EnableDad     bool `json:"enabledad,omitempty"`
	PortIsolation bool `json:"portIsolation,omitempty"`
	// KeepIPv6LinkLocal (extension) leaves IPv6 on the container's interface
	// when the attachment has no IPv6 address (see ipv6_quiet.go).
	KeepIPv6LinkLocal bool `json:"keepIPv6LinkLocal,omitempty"`
	// DisableContainerInterface leaves the container's interface down and unaddressed.
	DisableContainerInterface bool `json:"disableContainerInterface,omitempty"`

	// The filter half (extensions, Docker's defaults): see forward.go.
	// GatewayMode "nat" drops what is routed to a container from outside
	// its bridge unless it was DNATed to a published port;
	// "nat-unprotected" lets it through (what Kubernetes needs). Unset, a
	// Kubernetes pod gets the latter, anything else the former (see
	// gateway_mode.go).
	GatewayMode    string `json:"gatewayMode,omitempty"`
	gatewayModeWhy string
	// IsolateNetworks drops traffic between containers of different
	// isolated networks, unless DNATed to a published port.
	IsolateNetworks *bool `json:"isolateNetworks,omitempty"`
	// ICC false (Docker's enable_icc=false) blocks container-to-container
	// traffic on the bridge, except through published ports.
	ICC *bool `json:"icc,omitempty"`
	// TrustedHostInterfaces (Docker's trusted_host_interfaces) are host
	// interfaces, a VPN or an overlay, from which direct routing to the
	// containers is allowed in spite of gatewayMode nat's protection.
	TrustedHostInterfaces []string `json:"trustedHostInterfaces,omitempty"`
	// IPForwardNoDrop (Docker's ip-forward-no-drop): when this bridge turns
	// the host's forwarding on, keep forwarding everything instead of
	// dropping what no container network takes part in (ip_forward.go).
	IPForwardNoDrop bool               `json:"ipForwardNoDrop,omitempty"`
	kubernetesPod   bool               // CNI_ARGS name a Kubernetes pod: the node's forwarding is Kubernetes'
	guarded         []netfilter.Family // families whose forwarding this bridge turned on, with the guard

	// Reference keys not implemented yet: rejected when set, never ignored.
	Vlan                int               `json:"vlan,omitempty"`
	VlanTrunk           []json.RawMessage `json:"vlanTrunk,omitempty"`
	PreserveDefaultVlan bool              `json:"preserveDefaultVlan,omitempty"`
	MacSpoofChk         bool              `json:"macspoofchk,omitempty"`

	Args struct {
		Cni struct {
			Mac string `json:"mac,omitempty"`
		} `json:"cni,omitempty"`
	} `json:"args,omitempty"`
	RuntimeConfig struct {
		Mac string `json:"mac,omitempty"`
	} `json:"runtimeConfig,omitempty"`

	mac string // the container MAC asked for, from any of the three places
}

// LoadConfig parses and validates stdin plus CNI_ARGS.
func LoadConfig(stdin []byte, envArgs string) (*NetConf, error) {
	n := &NetConf{BrName: DefaultBridge}
	if err := json.Unmarshal(stdin, n); err != nil {
		return nil, cnierr.Decode("bridge: cannot parse network config: %v", err)
	}
	if err := version.ParsePrevResult(&n.NetConf); err != nil {
		return nil, cnierr.Decode("bridge: cannot parse prevResult: %v", err)
	}
	if n.BrName == "" {
		n.BrName = DefaultBridge
	}
	if len(n.BrName) > 15 || strings.ContainsAny(n.BrName, "/ \t\n:") {
		return nil, cnierr.Config("bridge: %q is not a valid interface name (at most 15 characters, no '/', ':' or spaces)", n.BrName)
	}
	if n.IsDefaultGW {
		n.IsGW = true
	}
	if n.MTU < 0 || n.MTU > 65535 {
		return nil, cnierr.Config("bridge: mtu %d is out of range (0 for the kernel default, up to 65535)", n.MTU)
	}
	switch {
	case n.Vlan != 0 || len(n.VlanTrunk) > 0 || n.PreserveDefaultVlan:
		return nil, cnierr.Config("bridge: VLAN keys (vlan, vlanTrunk, preserveDefaultVlan) are not supported yet; remove them from network %q", n.Name)
	case n.MacSpoofChk:
		return nil, cnierr.Config("bridge: macspoofchk is not supported yet; remove it from network %q", n.Name)
	}
	n.chooseGatewayMode(envArgs)
	switch n.GatewayMode {
	case GatewayModeNAT, GatewayModeNATUnprotected, GatewayModeIsolated, GatewayModeRouted:
	default:
		return nil, cnierr.Config("bridge: gatewayMode %q is not supported: use %q (the default), %q, %q or %q", n.GatewayMode, GatewayModeNAT, GatewayModeNATUnprotected, GatewayModeRouted, GatewayModeIsolated)
	}
	n.applyMode()
	yes := true
	if n.IsolateNetworks == nil {
		// Docker's isolation between its networks; the Kubernetes
		// network model has none (the reference bridge neither).
		isolate := !n.kubernetesPod
		n.IsolateNetworks = &isolate
	}
	if n.ICC == nil {
		n.ICC = &yes
	}
	if n.IPMasq || n.isLayer3() {
		if err := netfilter.ValidateBackendName(n.IPMasqBackend); err != nil {
			return nil, cnierr.Config("bridge: ipMasqBackend: %v", err)
		}
	}
	if err := n.parseNonMasq(); err != nil {
		return nil, err
	}
	for _, name := range n.TrustedHostInterfaces {
		if name == "" || len(name) > 15 || strings.ContainsAny(name, "/ \t\n\x00") || name == "." || name == ".." {
			return nil, cnierr.Config("bridge: trustedHostInterfaces: %q is not an interface name (at most 15 characters, no '/' or space)", name)
		}
		if name == n.BrName {
			return nil, cnierr.Config("bridge: trustedHostInterfaces: %q is the network's own bridge, which always reaches its containers", name)
		}
		// iptables reads a trailing + as "every name with this prefix",
		// nftables' sets as the literal name: refused, so that the key
		// means one thing whichever backend holds the drop.
		if strings.HasSuffix(name, "+") {
			return nil, cnierr.Config("bridge: trustedHostInterfaces: %q ends in '+', a prefix wildcard to iptables and a literal name to nftables: list each interface by its full name", name)
		}
	}

	n.mac = n.RuntimeConfig.Mac
	if n.Args.Cni.Mac != "" {
		n.mac = n.Args.Cni.Mac
	}
	if m := envArg(envArgs, "MAC"); m != "" {
		n.mac = m
	}
	if n.mac != "" {
		if _, err := net.ParseMAC(n.mac); err != nil {
			return nil, cnierr.Config("bridge: container MAC %q is invalid: %v", n.mac, err)
		}
	}
	return n, nil
}

// parseNonMasq reads nonMasqueradeCIDRs; one inside another would be
// two overlapping entries of one set, so it is refused.
func (n *NetConf) parseNonMasq() error {
	for _, c := range n.NonMasqueradeCIDRs {
		_, ipnet, err := net.ParseCIDR(c)
		if err != nil {
			return cnierr.Config("bridge: nonMasqueradeCIDRs: %q is not a CIDR (like \"10.244.0.0/16\")", c)
		}
		for _, prev := range n.nonMasq {
			if prev.Contains(ipnet.IP) || ipnet.Contains(prev.IP) {
				return cnierr.Config("bridge: nonMasqueradeCIDRs: %s and %s overlap: list the larger one alone", prev, ipnet)
			}
		}
		n.nonMasq = append(n.nonMasq, ipnet)
	}
	return nil
}

// validateForAdd refuses the key pairs the reference's ADD refuses. DEL
// and CHECK accept them, so an attachment made by a plugin that allowed
// them can still be removed.
func (n *NetConf) validateForAdd() error {
	switch {
	case n.HairpinMode && n.PromiscMode:
		return cnierr.Config("bridge: hairpinMode and promiscMode exclude each other (as in the reference plugin): keep one in network %q", n.Name)
	case n.isLayer3() && n.DisableContainerInterface:
		return cnierr.Config("bridge: disableContainerInterface leaves the interface unaddressed, so network %q cannot have an ipam section (as in the reference plugin): remove one", n.Name)
	}
	return nil
}

// isLayer3 reports whether the network assigns addresses (has an IPAM plugin).
func (n *NetConf) isLayer3() bool { return n.IPAM.Type != "" }

func envArg(args, key string) string {
	for _, kv := range strings.Split(args, ";") {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

func (n *NetConf) String() string { return fmt.Sprintf("network %q (bridge %s)", n.Name, n.BrName) }

// backend is the netfilter backend masquerade and forwarding use.
func (n *NetConf) backend() string { return host.Resolve(n.IPMasqBackend, netfilter.Features{}) }
