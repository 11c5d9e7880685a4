package bridgeplugin

import (
	"fmt"
	"net"
	"os"
	"slices"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/procsys"
)

func forwardSpecs(n *NetConf, o netfilter.Owner, ips []*current.IPConfig) []netfilter.ForwardSpec {
	specs := make([]netfilter.ForwardSpec, 0, len(ips))
	for _, ipc := range ips {
		subnet := &net.IPNet{IP: ipc.Address.IP.Mask(ipc.Address.Mask), Mask: ipc.Address.Mask}
		specs = append(specs, netfilter.ForwardSpec{
			Owner: o, IP: ipc.Address.IP, Bridge: n.BrName, Subnet: subnet,
			Protect: n.protects(),
			Routed:  n.GatewayMode == GatewayModeRouted,
			Trusted: n.TrustedHostInterfaces,
			// A routed network's published ports are for everyone, the
			// containers of other networks included, by address.
			Isolate:    *n.IsolateNetworks && n.GatewayMode != GatewayModeRouted,
			IsolateOut: *n.IsolateNetworks && n.GatewayMode == GatewayModeRouted,
			NoICC:      !*n.ICC,
			Guard:      slices.Contains(n.guarded, netfilter.FamilyOf(ipc.Address.IP)),
			Mode:       n.GatewayMode,
			ModeWhy:    n.gatewayModeWhy,
		})
	}
	return specs
}

// addForwarding queues the attachment's forwarding rules.
func addForwarding(c *attachment.Change, n *NetConf, o netfilter.Owner, result *current.Result) {
	rec := attachment.Record[netfilter.ForwardSpec]{Backend: n.backend(), Specs: forwardSpecs(n, o, result.IPs)}
	attachment.Forwarding.Install(c, o, rec)
}

// delForwarding queues the removal of o's forwarding rules; without a
// record they are searched for by tag.
func delForwarding(c *attachment.Change, n *NetConf, o netfilter.Owner) {
	var families []netfilter.Family
	if n.isLayer3() {
		families = delFamilies(n)
	}
	attachment.Forwarding.Remove(c, o, netfilter.ForwardSpec{Owner: o}, families)
}

// checkForwarding verifies the forwarding rules of each address in ips.
func checkForwarding(n *NetConf, o netfilter.Owner, ips []*current.IPConfig) error {
	n.guarded = recordedGuards(n)
	return attachment.Forwarding.CheckInstalled(attachment.HostEnv(n.StateDir), o, forwardSpecs(n, o, ips), n.backend())
}

// checkGatewayMode fails when the attachment was set up in another gateway
// mode than its config and CNI_ARGS give now: the kernel check alone would
// not see a protection that is there but no longer wanted.
func checkGatewayMode(n *NetConf, o netfilter.Owner) error {
	rec, found, err := attachment.Forwarding.Recorded(attachment.HostEnv(n.StateDir), o)
	if err != nil || !found {
		return err
	}
	for _, s := range rec.Specs {
		if s.Mode != "" && s.Mode != n.GatewayMode {
			return cnierr.Drift("bridge: container %s was set up with gatewayMode %s (%s), but its config and CNI_ARGS now give %s (%s); DEL and ADD it again to change it",
				o.ContainerID, s.Mode, s.ModeWhy, n.GatewayMode, n.gatewayModeWhy)
		}
	}
	return nil
}

// brNetfilter reports whether bridged IPv4 frames pass through the IP
// hooks here (br_netfilter with bridge-nf-call-iptables, as on most
// Kubernetes nodes). Then the forward rules see traffic between two
// containers of a bridge, and the DNATed hairpin is itself bridged from
// port to port; otherwise only isolated bridge ports can stop the former,
// and they leave the routed hairpin alone.
func brNetfilter() bool { return procsys.Get("net/bridge/bridge-nf-call-iptables") == "1" }

// iccForIPv6 makes icc: false hold for IPv6 too. Where br_netfilter
// passes bridged IPv4 frames through the IP hooks (so the bridge relies
// on its forward drops, not on isolated ports) but not IPv6 ones, IPv6
// between two containers of the bridge would pass unfiltered: as Docker
// does, it turns bridge-nf-call-ip6tables on, and says so.
func iccForIPv6(n *NetConf, result *current.Result) error {
	if *n.ICC || !brNetfilter() || !hasIPv6(result) {
		return nil
	}
	const key = "net/bridge/bridge-nf-call-ip6tables"
	if v := procsys.Get(key); v == "" || v == "1" {
		return nil // unreadable, or on already
	}
	if err := procsys.Set(key, "1"); err != nil {
		return cnierr.Wrap(err, "bridge: icc false for IPv6: set "+key)
	}
	fmt.Fprintf(os.Stderr, "bridge: icc is false and bridge-nf-call-iptables is on: turned net.bridge.bridge-nf-call-ip6tables on too, so that IPv6 between containers of %s is filtered as IPv4 is\n", n.BrName)
	return nil
}
