// Package portmapplugin is the portmap plugin: host ports forwarded to a
// container's address, as `docker run -p` does.
package portmapplugin

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
	"github.com/dockernet/cni-plugins/plugins/pkg/handoff"
	"github.com/dockernet/cni-plugins/plugins/pkg/hostports"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter/host"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter/reference"
	"github.com/dockernet/cni-plugins/plugins/pkg/oneproc"
	"github.com/dockernet/cni-plugins/plugins/pkg/timeline"
)

// mappingHeap is the fresh heap an ADD with mappings writes past its
// config (records, claims, the netfilter transaction), for
// oneproc.Prefault; an ADD without one writes too little to pay for it.
const mappingHeap = 512 << 10

// containerAddrs returns the first container address of each family in prevResult.
func containerAddrs(prev *current.Result) map[netfilter.Family]*net.IPNet {
	out := map[netfilter.Family]*net.IPNet{}
	for _, ipc := range prev.IPs {
		if ipc.Interface != nil {
			i := *ipc.Interface
			if i < 0 || i >= len(prev.Interfaces) || prev.Interfaces[i].Sandbox == "" {
				continue // an address of a host-side interface
			}
		}
		f := netfilter.FamilyOf(ipc.Address.IP)
		if out[f] == nil {
			a := ipc.Address
			out[f] = &a
		}
	}
	return out
}

func ownerOf(c *PortMapConf, args *skel.CmdArgs) netfilter.Owner {
	return netfilter.Owner{Network: c.Name, ContainerID: args.ContainerID, IfName: args.IfName}
}

func specFor(c *PortMapConf, args *skel.CmdArgs, f netfilter.Family, addr *net.IPNet) netfilter.PortMapSpec {
	spec := netfilter.PortMapSpec{
		Owner:        ownerOf(c, args),
		ContainerIP:  addr.IP,
		ContainerNet: &net.IPNet{IP: addr.IP.Mask(addr.Mask), Mask: addr.Mask},
		Mappings:     c.mappings,
		SNAT:         *c.SNAT,
		MasqAll:      c.MasqAll,
		MarkBit:      *c.MarkMasqBit,
		Conditions:   c.conditions(f),
	}
	if c.ExternalSetMarkChain != nil {
		spec.ExternalMark = *c.ExternalSetMarkChain
	}
	return spec
}

func prevResult(c *PortMapConf, cmd string) (*current.Result, error) {
	if c.PrevResult == nil {
		return nil, cnierr.Config("portmap: %s needs a prevResult: run portmap chained after an interface plugin such as bridge", cmd)
	}
	prev, err := current.NewResultFromResult(c.PrevResult)
	if err != nil {
		return nil, cnierr.Decode("portmap: cannot read prevResult: %v", err)
	}
	return prev, nil
}

// Add publishes the mappings and passes prevResult on.
func Add(args *skel.CmdArgs) error {
	c, err := LoadConfig(args.StdinData)
	if err != nil {
		return err
	}
	prev, err := prevResult(c, "ADD")
	if err != nil {
		return err
	}
	timeline.Mark("config")
	handoff.AllowIf(attachment.HostEnv(c.StateDir).Reaps)
	if len(c.mappings) == 0 {
		return types.PrintResult(prev, c.CNIVersion)
	}
	oneproc.Prefault(mappingHeap)
	oneproc.ReserveStack(oneproc.NetlinkStack)
	addrs := containerAddrs(prev)
	if len(addrs) == 0 {
		return cnierr.Config("portmap: prevResult has no container address to forward host ports to")
	}
	var have []netfilter.Family
	for f := range addrs {
		have = append(have, f)
	}
	for _, m := range c.mappings {
		if !appliesTo(m, have) {
			return cnierr.Config("portmap: hostIP %s of %s is an %s address, and the container has none of that family: publish it on an address of a family the container has, or without hostIP", m.HostIP, m, netfilter.FamilyOf(m.HostIP))
		}
	}
	br, err := recordedBridge(c, ownerOf(c, args))
	if err != nil {
		return err
	}
	if err := refuseIsolated(c, br); err != nil {
		return err
	}
	timeline.Mark("bridge-record")
	if br.mode == modeRouted {
		return addRouted(c, args, prev, addrs, br.backend)
	}
	rec := attachment.Record[netfilter.PortMapSpec]{Backend: c.backend()}
	if c.Backend == "" && c.Debug {
		fmt.Fprintf(os.Stderr, "portmap: using the %s backend (no \"backend\" configured)\n", rec.Backend)
	}
	var localnet localnetChange
	for _, f := range netfilter.BothFamilies {
		if addr := addrs[f]; addr != nil {
			spec := specFor(c, args, f, addr)
			if *c.SNAT {
				hairpinIf, err := enableHairpin(f, addr.IP, hostSideLinks(prev, br), &localnet)
				if err != nil {
					return cnierr.Wrap(err, "portmap")
				}
				spec.HairpinIf = hairpinIf
			}
			rec.Specs = append(rec.Specs, spec)
		}
	}
	// A failed ADD gives back the route_localnet it turned on, unless
	// another attachment's mappings rely on it by now.
	added := false
	defer func() {
		if !added {
			localnet.undo(c.StateDir)
		}
	}()
	timeline.Mark("hairpin")
	o := ownerOf(c, args)
	var families []netfilter.Family
	claims := map[hostports.Key][]hostports.Claim{}
	for _, spec := range rec.Specs {
		families = append(families, spec.Family())
		maps.Copy(claims, hostports.Wanted(o, spec.Family(), c.mappings))
	}
	if c.CheckHostListeners {
		busy, err := hostListeners(c.mappings, families)
		if err != nil {
			return cnierr.Wrap(err, "portmap: checkHostListeners")
		}
		for i, m := range c.mappings {
			if busy[i] != "" {
				return cnierr.Config("portmap: host port %s is already in use on this host by %s: publishing it would hide that service behind the container; pick another hostPort, or stop the service", m, busy[i])
			}
		}
	}
	timeline.Mark("listeners")
	ledger := hostports.New(c.StateDir)
	if err := ledger.Claim(o, claims); err != nil {
		var conflict *hostports.ConflictError
		if errors.As(err, &conflict) {
			return cnierr.Config("portmap: %v", err)
		}
		return cnierr.IO("portmap: host port claims: %v", err)
	}
	timeline.Mark("claims")
	change := attachment.HostEnv(c.StateDir).Begin("portmap")
	attachment.PortMappings.Install(change, o, rec)
	for _, name := range localnet.ifaces {
		change.NoteSysctl(name, c.Name, localnetKey(name), "0")
	}
	if err := change.Commit(); err != nil {
		_ = ledger.Release(o)
		return err
	}
	added = true
	timeline.Mark("netfilter")
	return types.PrintResult(prev, c.CNIVersion)
}

// Del removes this attachment's rules; it needs neither prevResult nor the
// netns. Without a record, the rules are searched for by tag in both
// families, unless the config publishes nothing (ADD installed nothing).
func Del(args *skel.CmdArgs) error {
	c, err := LoadConfig(args.StdinData)
	if err != nil {
		return err
	}
	o := ownerOf(c, args)
	var families []netfilter.Family
	if len(c.mappings) > 0 {
		families = netfilter.BothFamilies
	}
	// The mappings let a search by tag flush their UDP conntrack entries too.
	byTag := netfilter.PortMapSpec{Owner: o, Mappings: c.mappings}
	timeline.Mark("config")
	change := attachment.HostEnv(c.StateDir).Begin("portmap")
	attachment.PortMappings.Remove(change, o, byTag, families)
	if err := change.Commit(); err != nil {
		return err
	}
	timeline.Mark("netfilter")
	if err := hostports.New(c.StateDir).Release(o); err != nil {
		return cnierr.IO("portmap: host port claims: %v", err)
	}
	timeline.Mark("claims")
	// An attachment the reference portmap set up before the node switched.
	for _, f := range netfilter.BothFamilies {
		if err := reference.RemovePorts(f, c.Name, args.ContainerID, netfilter.Options{}); err != nil {
			return cnierr.Wrap(err, "portmap: the reference plugin's rules")
		}
	}
	return nil
}

// Check verifies every mapping's rules are in place.
func Check(args *skel.CmdArgs) error {
	c, err := LoadConfig(args.StdinData)
	if err != nil {
		return err
	}
	prev, err := prevResult(c, "CHECK")
	if err != nil {
		return err
	}
	if len(c.mappings) == 0 {
		return nil
	}
	addrs := containerAddrs(prev)
	o := ownerOf(c, args)
	br, err := recordedBridge(c, o)
	if err != nil {
		return err
	}
	if err := refuseIsolated(c, br); err != nil {
		return err
	}
	if br.mode == modeRouted {
		return attachment.PortMappings.CheckInstalled(attachment.HostEnv(c.StateDir), o, routedSpecs(c, o, addrs), br.backend)
	}
	// The hairpin interface ADD found is the record's: CHECK looks for
	// it too.
	hairpin := map[netfilter.Family]string{}
	if rec, found, err := attachment.PortMappings.Recorded(attachment.HostEnv(c.StateDir), o); err == nil && found {
		for _, s := range rec.Specs {
			hairpin[s.Family()] = s.HairpinIf
		}
	}
	specs := make([]netfilter.PortMapSpec, 0, len(addrs))
	for _, f := range netfilter.BothFamilies {
		if addr := addrs[f]; addr != nil {
			spec := specFor(c, args, f, addr)
			spec.HairpinIf = hairpin[f]
			specs = append(specs, spec)
		}
	}
	return attachment.PortMappings.CheckInstalled(attachment.HostEnv(c.StateDir), o, specs, c.backend())
}

// Status reports readiness: the configured backend must be usable.
func Status(args *skel.CmdArgs) error {
	c, err := LoadConfig(args.StdinData)
	if err != nil {
		return err
	}
	if err := (host.Host{}).Usable(c.backend(), netfilter.IPv4); err != nil {
		// Published ports already installed depend on the backend too.
		if recs, _ := attachment.PortMappings.Records(attachment.HostEnv(c.StateDir)); len(recs) > 0 {
			return cnierr.Limited("portmap: %v; %d attachments' published ports depend on it", err, len(recs))
		}
		return cnierr.Unavailable("portmap: %v", err)
	}
	return nil
}

// GC removes the host ports of every attachment of this network that is
// not in cni.dev/valid-attachments (CNI 1.1), by record, and their claims.
func GC(args *skel.CmdArgs) error {
	c, err := LoadConfig(args.StdinData)
	if err != nil {
		return err
	}
	keep, live := map[string]bool{}, map[string]bool{}
	for _, a := range c.ValidAttachments {
		keep[netfilter.Owner{Network: c.Name, ContainerID: a.ContainerID, IfName: a.IfName}.Tag()] = true
		live[a.ContainerID] = true
	}
	env := attachment.HostEnv(c.StateDir)
	err = errors.Join(attachment.Collect(env, "portmap", c.Name, keep, attachment.PortMappings), env.PruneMembers())
	if lerr := hostports.New(c.StateDir).GC(c.Name, keep); lerr != nil {
		err = errors.Join(err, cnierr.IO("portmap: GC of host port claims: %v", lerr))
	}
	// What the reference portmap set up before the node switched.
	if rerr := reference.Collect(c.Name, live, netfilter.Options{}); rerr != nil {
		err = errors.Join(err, cnierr.Wrap(rerr, "portmap: GC of the reference plugin's rules"))
	}
	return err
}

// appliesTo reports whether m publishes anything in one of families.
func appliesTo(m netfilter.PortMapping, families []netfilter.Family) bool {
	for _, f := range families {
		if _, ok := netfilter.HostIPFor(m, f); ok {
			return true
		}
	}
	return false
}
