package portmapplugin

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

// PortMapEntry is one runtimeConfig.portMappings element (the CNI
// "portMappings" capability, as sent by containerd, CRI-O and Podman).
type PortMapEntry struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
	// SourceRanges (extension) are the only source networks that reach
	// this mapping; they take the place of the network's allowedSources.
	SourceRanges []string `json:"sourceRanges,omitempty"`
}

// PortMapConf is the portmap plugin's config, with the reference plugin's keys.
type PortMapConf struct {
	types.NetConf
	Backend string `json:"backend,omitempty"`
	// StateDir (extension) holds the per-attachment records DEL reads.
	StateDir string `json:"stateDir,omitempty"`
	// Debug (extension) says on stderr what was chosen without being
	// asked; otherwise a success is silent unless it changed the host.
	Debug                bool      `json:"debug,omitempty"`
	SNAT                 *bool     `json:"snat,omitempty"`
	ConditionsV4         *[]string `json:"conditionsV4"`
	ConditionsV6         *[]string `json:"conditionsV6"`
	MasqAll              bool      `json:"masqAll,omitempty"`
	MarkMasqBit          *int      `json:"markMasqBit"`
	ExternalSetMarkChain *string   `json:"externalSetMarkChain"`
	// CheckHostListeners (extension) refuses a mapping whose host port a
	// host process already listens on (TCP) or is bound to (UDP), as
	// Docker does. Off by default: Podman binds every published port
	// itself around the time the plugins run.
	CheckHostListeners bool `json:"checkHostListeners,omitempty"`
	// AllowedSources (extension) are the only source networks that reach
	// this network's published ports (a mapping's sourceRanges take its
	// place); others get nothing back. Empty: every source.
	AllowedSources []string `json:"allowedSources,omitempty"`
	RuntimeConfig  struct {
		PortMaps []PortMapEntry `json:"portMappings,omitempty"`
	} `json:"runtimeConfig,omitempty"`

	mappings []netfilter.PortMapping
}

// validChainName: 1 to 28 of A-Z, a-z, 0-9, '_', '.', '-'. Not a regexp:
// compiling `{1,28}` cost every portmap process 27,000 allocations at
// start (GODEBUG=inittrace).
func validChainName(s string) bool {
	if len(s) < 1 || len(s) > 28 {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// LoadConfig parses and validates stdin.
func LoadConfig(stdin []byte) (*PortMapConf, error) {
	c := &PortMapConf{}
	if err := json.Unmarshal(stdin, c); err != nil {
		return nil, cnierr.Decode("portmap: cannot parse network config: %v", err)
	}
	if err := version.ParsePrevResult(&c.NetConf); err != nil {
		return nil, cnierr.Decode("portmap: cannot parse prevResult: %v", err)
	}
	if c.SNAT == nil {
		snat := true
		c.SNAT = &snat
	}
	if c.MarkMasqBit != nil && c.ExternalSetMarkChain != nil {
		return nil, cnierr.Config("portmap: markMasqBit and externalSetMarkChain exclude each other: keep one")
	}
	if c.MarkMasqBit == nil {
		bit := netfilter.DefaultMarkBit
		c.MarkMasqBit = &bit
	}
	if *c.MarkMasqBit < 0 || *c.MarkMasqBit > 31 {
		return nil, cnierr.Config("portmap: markMasqBit %d is out of range 0-31", *c.MarkMasqBit)
	}
	if c.ExternalSetMarkChain != nil && !validChainName(*c.ExternalSetMarkChain) {
		return nil, cnierr.Config("portmap: externalSetMarkChain %q is not a valid chain name", *c.ExternalSetMarkChain)
	}
	for _, conds := range []*[]string{c.ConditionsV4, c.ConditionsV6} {
		if conds == nil {
			continue
		}
		for _, tok := range *conds {
			if strings.ContainsAny(tok, "\n\r\x00\"") {
				return nil, cnierr.Config("portmap: condition %q contains a newline, NUL or quote", tok)
			}
		}
	}
	if err := netfilter.ValidateBackendName(c.Backend); err != nil {
		return nil, cnierr.Config("portmap: backend: %v", err)
	}
	if err := host.CheckSupported(c.Backend, c.needs()); err != nil {
		return nil, cnierr.Config("portmap: %v", err)
	}

	allowed, err := parseSources(c.AllowedSources)
	if err != nil {
		return nil, cnierr.Config("portmap: allowedSources: %v", err)
	}
	seen := map[string]int{}
	for i, e := range c.RuntimeConfig.PortMaps {
		m, err := e.toMapping()
		if err != nil {
			return nil, cnierr.Config("portmap: portMappings[%d]: %v", i, err)
		}
		if m.Sources == nil {
			m.Sources = allowed
		}
		key := fmt.Sprintf("%s/%d/%s", m.Protocol, m.HostPort, e.HostIP)
		if j, dup := seen[key]; dup {
			return nil, cnierr.Config("portmap: portMappings[%d] and [%d] both publish host port %d/%s", j, i, m.HostPort, m.Protocol)
		}
		seen[key] = i
		c.mappings = append(c.mappings, m)
	}
	return c, nil
}

func (e PortMapEntry) toMapping() (netfilter.PortMapping, error) {
	m := netfilter.PortMapping{HostPort: e.HostPort, ContainerPort: e.ContainerPort, Protocol: strings.ToLower(e.Protocol)}
	if m.Protocol == "" {
		m.Protocol = "tcp"
	}
	switch m.Protocol {
	case "tcp", "udp", "sctp":
	default:
		return m, fmt.Errorf("protocol %q is not one of tcp, udp, sctp", e.Protocol)
	}
	if e.HostPort < 1 || e.HostPort > 65535 {
		return m, fmt.Errorf("hostPort %d is out of range 1-65535", e.HostPort)
	}
	if e.ContainerPort < 1 || e.ContainerPort > 65535 {
		return m, fmt.Errorf("containerPort %d is out of range 1-65535", e.ContainerPort)
	}
	if e.HostIP != "" {
		m.HostIP = net.ParseIP(e.HostIP)
		if m.HostIP == nil {
			return m, fmt.Errorf("hostIP %q is not an IP address", e.HostIP)
		}
	}
	sources, err := parseSources(e.SourceRanges)
	if err != nil {
		return m, fmt.Errorf("sourceRanges: %v", err)
	}
	m.Sources = sources
	return m, nil
}

// parseSources reads an allowlist: CIDRs, or addresses for one host each.
// A network inside another of the list adds nothing and is dropped (the
// nftables set takes no overlapping ranges).
func parseSources(list []string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for i, s := range list {
		n, err := parseSource(s)
		if err != nil {
			return nil, fmt.Errorf("[%d] %q is not a CIDR (10.0.0.0/8, 2001:db8::/32) or an address", i, s)
		}
		out = append(out, n)
	}
	var kept []*net.IPNet
	for i, n := range out {
		inside := false
		for j, o := range out {
			ones, _ := n.Mask.Size()
			oOnes, _ := o.Mask.Size()
			if i != j && o.Contains(n.IP) && len(o.IP) == len(n.IP) && (oOnes < ones || (oOnes == ones && j < i)) {
				inside = true
				break
			}
		}
		if !inside {
			kept = append(kept, n)
		}
	}
	return kept, nil
}

func parseSource(s string) (*net.IPNet, error) {
	if _, n, err := net.ParseCIDR(s); err == nil {
		if v4 := n.IP.To4(); v4 != nil {
			n.IP = v4
		}
		return n, nil
	}
	ip := net.ParseIP(s)
	if ip == nil {
		return nil, fmt.Errorf("not an address")
	}
	if v4 := ip.To4(); v4 != nil {
		return &net.IPNet{IP: v4, Mask: net.CIDRMask(32, 32)}, nil
	}
	return &net.IPNet{IP: ip, Mask: net.CIDRMask(128, 128)}, nil
}

func (c *PortMapConf) conditions(f netfilter.Family) []string {
	if f == netfilter.IPv4 && c.ConditionsV4 != nil {
		return *c.ConditionsV4
	}
	if f == netfilter.IPv6 && c.ConditionsV6 != nil {
		return *c.ConditionsV6
	}
	return nil
}

// needs are the optional backend features the config's keys ask for.
func (c *PortMapConf) needs() netfilter.Features {
	return netfilter.Features{
		Conditions:   c.ConditionsV4 != nil || c.ConditionsV6 != nil,
		ExternalMark: c.ExternalSetMarkChain != nil,
		AnyMarkBit:   c.MarkMasqBit != nil && *c.MarkMasqBit != netfilter.DefaultMarkBit,
	}
}

// backend is the backend to use: the configured one, or the best the
// host offers that implements every key asked for.
func (c *PortMapConf) backend() string { return host.Resolve(c.Backend, c.needs()) }
