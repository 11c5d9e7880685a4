package portmapplugin

import (
	"fmt"
	"net"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// A bridge in gatewayMode routed (Docker 28's) masquerades nothing and
// drops direct routing to its containers except to their published
// ports. Publishing there opens the container port on the container's own
// address, as Docker does: the host port is not used, and hostIP only
// says which family. The ports open in the backend that holds the
// bridge's drops, whatever portmap's own backend is.

// bridgeOf is what the bridge's record says of o's network: its gateway
// mode (GatewayMode of the bridge plugin; "" without a record, as
// after another interface plugin), the backend of its drops, and its
// bridge.
type bridgeOf struct {
	mode, backend, name string
}

// Gateway modes portmap acts on (the bridge plugin's names).
const (
	modeRouted   = "routed"
	modeIsolated = "isolated"
)

func recordedBridge(c *PortMapConf, o netfilter.Owner) (bridgeOf, error) {
	rec, found, err := attachment.Forwarding.Recorded(attachment.HostEnv(c.StateDir), o)
	if err != nil || !found {
		return bridgeOf{}, err
	}
	out := bridgeOf{backend: rec.Backend}
	for _, s := range rec.Specs {
		out.name = s.Bridge
		if s.Routed {
			out.mode = modeRouted
		} else if s.Mode != "" {
			out.mode = s.Mode
		}
	}
	return out, nil
}

// refuseIsolated is the error for mappings on an isolated network: its
// containers are reachable from their own bridge only (Docker refuses
// to publish there too), and publishing would change the host for
// nothing. Raised before anything is touched.
func refuseIsolated(c *PortMapConf, br bridgeOf) error {
	if br.mode != modeIsolated || len(c.mappings) == 0 {
		return nil
	}
	return cnierr.Config("portmap: network %s is in gatewayMode isolated: its containers are reachable from bridge %s only, so %s cannot be published; remove the port mappings, or use gatewayMode nat or routed",
		c.Name, br.name, c.mappings[0])
}

// addRouted publishes c's container ports on addrs.
func addRouted(c *PortMapConf, args *skel.CmdArgs, prev *current.Result, addrs map[netfilter.Family]*net.IPNet, backend string) error {
	o := ownerOf(c, args)
	for _, m := range c.mappings {
		if len(m.Sources) > 0 {
			return cnierr.Config("portmap: network %s is in gatewayMode routed, where %s is published on the container's address: a source allowlist (allowedSources, sourceRanges) applies to host ports only; drop it or use gatewayMode nat", c.Name, m)
		}
		if c.Debug && (m.HostPort != m.ContainerPort || (m.HostIP != nil && !m.HostIP.IsUnspecified())) {
			fmt.Fprintf(os.Stderr, "portmap: network %s is in gatewayMode routed: %s opens container port %d/%s on the container's address; the host address and port are not used\n", c.Name, m, m.ContainerPort, m.Protocol)
		}
	}
	rec := attachment.Record[netfilter.PortMapSpec]{Backend: backend, Specs: routedSpecs(c, o, addrs)}
	change := attachment.HostEnv(c.StateDir).Begin("portmap")
	attachment.PortMappings.Install(change, o, rec)
	if err := change.Commit(); err != nil {
		return err
	}
	return types.PrintResult(prev, c.CNIVersion)
}

// routedSpecs are the specs of c's mappings on addrs, one per family.
func routedSpecs(c *PortMapConf, o netfilter.Owner, addrs map[netfilter.Family]*net.IPNet) []netfilter.PortMapSpec {
	var specs []netfilter.PortMapSpec
	for _, f := range netfilter.BothFamilies {
		if addr := addrs[f]; addr != nil {
			specs = append(specs, netfilter.PortMapSpec{Owner: o, ContainerIP: addr.IP,
				ContainerNet: &net.IPNet{IP: addr.IP.Mask(addr.Mask), Mask: addr.Mask}, Mappings: c.mappings, Routed: true})
		}
	}
	return specs
}
