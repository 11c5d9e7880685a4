package bridgeplugin

import (
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/containernetworking/cni/pkg/skel"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter/reference"
)

// masqSpecs are the masquerade of each address in ips. The iptables
// backend's is the network's (Subnet); the nftables backend's stays the
// container's: a few set elements, and no network record to write.
func masqSpecs(n *NetConf, o netfilter.Owner, ips []*current.IPConfig) []netfilter.MasqSpec {
	specs := make([]netfilter.MasqSpec, 0, len(ips))
	perNetwork := n.backend() == netfilter.NameIPTables
	for _, ipc := range ips {
		spec := netfilter.MasqSpec{Owner: o, IP: ipc.Address.IP, Bridge: n.BrName}
		if perNetwork {
			spec.Subnet = &net.IPNet{IP: ipc.Address.IP.Mask(ipc.Address.Mask), Mask: ipc.Address.Mask}
		}
		for _, except := range n.nonMasq {
			if netfilter.FamilyOf(except.IP) == netfilter.FamilyOf(ipc.Address.IP) {
				spec.Except = append(spec.Except, except)
			}
		}
		specs = append(specs, spec)
	}
	return specs
}

// addMasquerade queues the masquerade of each container address on its
// way out.
func addMasquerade(c *attachment.Change, n *NetConf, o netfilter.Owner, result *current.Result) {
	rec := attachment.Record[netfilter.MasqSpec]{Backend: n.backend(), Specs: masqSpecs(n, o, result.IPs)}
	if n.IPMasqBackend == "" && n.Debug {
		fmt.Fprintf(os.Stderr, "bridge: ipMasq uses the %s backend (no \"ipMasqBackend\" configured)\n", rec.Backend)
	}
	attachment.Masquerade.Install(c, o, rec)
}

// delMasquerade queues the removal of o's masquerade. Without a record,
// it is searched for by tag only where ipMasq could have made it.
func delMasquerade(c *attachment.Change, n *NetConf, o netfilter.Owner) {
	var families []netfilter.Family
	if n.IPMasq {
		families = delFamilies(n)
	}
	attachment.Masquerade.Remove(c, o, netfilter.MasqSpec{Owner: o}, families)
}

// checkMasquerade verifies the masquerade of each address in ips: the
// container's own rules where its record predates per-network ones.
func checkMasquerade(n *NetConf, o netfilter.Owner, ips []*current.IPConfig) error {
	env := attachment.HostEnv(n.StateDir)
	specs := masqSpecs(n, o, ips)
	if rec, found, err := attachment.Masquerade.Recorded(env, o); err == nil && found && len(rec.Specs) > 0 && rec.Specs[0].Subnet == nil {
		for i := range specs {
			specs[i].Subnet = nil
		}
	}
	return attachment.Masquerade.CheckInstalled(env, o, specs, n.backend())
}

// delReferenceMasq removes the reference bridge's masquerade of an
// attachment it set up before the node switched to this plugin.
func delReferenceMasq(n *NetConf, args *skel.CmdArgs) error {
	if !n.IPMasq {
		return nil
	}
	var errs []error
	for _, f := range netfilter.BothFamilies {
		errs = append(errs, reference.RemoveMasq(f, n.Name, args.ContainerID, args.IfName, netfilter.Options{}))
	}
	if err := errors.Join(errs...); err != nil {
		return cnierr.Wrap(err, "bridge: the reference plugin's masquerade")
	}
	return nil
}
