package hostlocal

import (
	"encoding/json"
	"net"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
)

// IPAMConfig is the "ipam" object, with the reference host-local's keys.
type IPAMConfig struct {
	*Range                    // legacy single range: subnet, rangeStart, rangeEnd, gateway
	Type       string         `json:"type"`
	Routes     []*types.Route `json:"routes"`
	DataDir    string         `json:"dataDir"`
	ResolvConf string         `json:"resolvConf"`
	Ranges     []RangeSet     `json:"ranges"`

	Name        string   `json:"-"` // the network name: the reservation directory
	RequestedIP []net.IP `json:"-"` // from runtimeConfig.ips, args.cni.ips and CNI_ARGS IP=
}

type netConf struct {
	Name          string      `json:"name"`
	CNIVersion    string      `json:"cniVersion"`
	IPAM          *IPAMConfig `json:"ipam"`
	RuntimeConfig struct {
		IPs []string `json:"ips,omitempty"`
	} `json:"runtimeConfig,omitempty"`
	Args *struct {
		CNI *struct {
			IPs []string `json:"ips"`
		} `json:"cni"`
	} `json:"args"`
}

// LoadConfig parses the plugin's stdin and CNI_ARGS into a validated config.
func LoadConfig(stdin []byte, envArgs string) (*IPAMConfig, string, error) {
	var n netConf
	if err := json.Unmarshal(stdin, &n); err != nil {
		return nil, "", cnierr.Decode("host-local: cannot parse network config: %v", err)
	}
	if n.IPAM == nil {
		return nil, "", cnierr.Config("host-local: network %q has no \"ipam\" section", n.Name)
	}
	c := n.IPAM
	c.Name = n.Name

	var requested []string
	requested = append(requested, n.RuntimeConfig.IPs...)
	if n.Args != nil && n.Args.CNI != nil {
		requested = append(requested, n.Args.CNI.IPs...)
	}
	envIPs, err := ipsFromEnvArgs(envArgs)
	if err != nil {
		return nil, "", err
	}
	requested = append(requested, envIPs...)
	for _, s := range requested {
		parsed := parseRequested(strings.TrimSpace(s))
		if parsed == nil {
			return nil, "", cnierr.Config("host-local: requested address %q is not an IP address", s)
		}
		c.RequestedIP = append(c.RequestedIP, parsed)
	}

	// The legacy top-level range becomes the first range set.
	if c.Range != nil && c.Range.Subnet.IP != nil {
		c.Ranges = append([]RangeSet{{*c.Range}}, c.Ranges...)
	}
	c.Range = nil
	if len(c.Ranges) == 0 {
		return nil, "", cnierr.Config("host-local: network %q has no address range: set \"ipam\": {\"ranges\": [[{\"subnet\": \"172.17.0.0/16\"}]]} or the legacy \"subnet\"", n.Name)
	}
	for i := range c.Ranges {
		if err := c.Ranges[i].Canonicalize(); err != nil {
			return nil, "", cnierr.Config("host-local: range set %d: %v", i, err)
		}
		for j := 0; j < i; j++ {
			if c.Ranges[i].Overlaps(c.Ranges[j]) {
				return nil, "", cnierr.Config("host-local: range sets %d (%s) and %d (%s) overlap", j, c.Ranges[j].String(), i, c.Ranges[i].String())
			}
		}
	}
	return c, n.CNIVersion, nil
}

// ipsFromEnvArgs reads IP=a[,b] from CNI_ARGS ("K=V;K=V"); other keys are ignored.
func ipsFromEnvArgs(args string) ([]string, error) {
	var out []string
	if args == "" {
		return nil, nil
	}
	for _, kv := range strings.Split(args, ";") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, cnierr.Env("CNI_ARGS: %q is not KEY=VALUE", kv)
		}
		if k == "IP" {
			for _, s := range strings.Split(v, ",") {
				if s != "" {
					out = append(out, s)
				}
			}
		}
	}
	return out, nil
}

// assignRequested pairs each requested address with the range set that holds it.
func assignRequested(c *IPAMConfig) (map[int]net.IP, error) {
	out := map[int]net.IP{}
	for _, addr := range c.RequestedIP {
		found := false
		for i, set := range c.Ranges {
			if set.RangeFor(addr) == nil {
				continue
			}
			if prev, dup := out[i]; dup {
				return nil, cnierr.Config("host-local: requested addresses %s and %s are both in range set %d; ask for one per range set", prev, addr, i)
			}
			out[i] = addr
			found = true
			break
		}
		if !found {
			return nil, cnierr.Config("host-local: requested address %s is outside every range of network %q (%s)", addr, c.Name, describeSets(c.Ranges))
		}
	}
	return out, nil
}

func describeSets(sets []RangeSet) string {
	parts := make([]string, len(sets))
	for i, s := range sets {
		parts[i] = s.String()
	}
	return strings.Join(parts, "; ")
}

// parseRequested reads a requested address, bare or with a prefix length
// (the reference accepts both and uses the address).
func parseRequested(s string) net.IP {
	if strings.Contains(s, "/") {
		addr, _, err := net.ParseCIDR(s)
		if err != nil {
			return nil
		}
		return addr
	}
	return net.ParseIP(s)
}
