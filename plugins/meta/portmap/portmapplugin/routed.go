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

// routedBridge reports whether o's bridge runs in gatewayMode routed, by
// the bridge's record, and the backend of its drops.
func routedBridge(c *PortMapConf, o netfilter.Owner) (string, bool, error) {
	rec, found, err := attachment.Forwarding.Recorded(attachment.HostEnv(c.StateDir), o)
	if err != nil || !found {
		return "", false, err
	}
	for _, s := range rec.Specs {
		if s.Routed {
			return rec.Backend, true, nil
		}
	}
	return "", false, nil
}

// addRouted publishes c's container ports on addrs.
func addRouted(c *PortMapConf, args *skel.CmdArgs, prev *current.Result, addrs map[netfilter.Family]*net.IPNet, backend string) error {
	o := ownerOf(c, args)
	for _, m := range c.mappings {
		if len(m.Sources) > 0 {
			return cnierr.Config("portmap: network %s is in gatewayMode routed, where %s is published on the container's address: a source allowlist (allowedSources, sourceRanges) applies to host ports only; drop it or use gatewayMode nat", c.Name, m)
		}
		if m.HostPort != m.ContainerPort || (m.HostIP != nil && !m.HostIP.IsUnspecified()) {
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
