// Package portmapplugin is the portmap plugin: host ports forwarded to a
// container's address, as `docker run -p` does.
package portmapplugin

import (
	"fmt"
	"net"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/procsys"
	"github.com/dockernet/cni-plugins/plugins/pkg/state"
)

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

// udpPorts lists the host ports of UDP mappings.
func udpPorts(ms []netfilter.PortMapping) []int {
	var out []int
	for _, m := range ms {
		if m.Protocol == "udp" {
			out = append(out, m.HostPort)
		}
	}
	return out
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
	if len(c.mappings) == 0 {
		return types.PrintResult(prev, c.CNIVersion)
	}
	addrs := containerAddrs(prev)
	if len(addrs) == 0 {
		return cnierr.Config("portmap: prevResult has no container address to forward host ports to")
	}
	rec := netfilter.PortMapRecord{Backend: netfilter.Resolve(c.Backend, c.needsIPTables())}
	if c.Backend == "" {
		fmt.Fprintf(os.Stderr, "portmap: using the %s backend (no \"backend\" configured)\n", rec.Backend)
	}
	for _, f := range netfilter.BothFamilies {
		if addr := addrs[f]; addr != nil {
			spec := specFor(c, args, f, addr)
			if *c.SNAT {
				hairpinIf, err := enableHairpin(f, addr.IP)
				if err != nil {
					return cnierr.Wrap(err, "portmap")
				}
				spec.HairpinIf = hairpinIf
			}
			rec.Specs = append(rec.Specs, spec)
		}
	}
	if err := install(c, ownerOf(c, args), rec); err != nil {
		return err
	}
	return types.PrintResult(prev, c.CNIVersion)
}

// install records rec and then applies it; on failure it leaves neither
// rules nor a record behind.
func install(c *PortMapConf, o netfilter.Owner, rec netfilter.PortMapRecord) (err error) {
	store := state.New(c.StateDir)
	if err := state.Replace(store, netfilter.KindPortMap, o.Tag(), rec, removeRecord); err != nil {
		return err
	}
	var done []func()
	defer func() {
		if err != nil {
			for _, undo := range done {
				undo()
			}
			_ = store.Remove(netfilter.KindPortMap, o.Tag())
		}
	}()
	for _, spec := range rec.Specs {
		be, err := netfilter.New(rec.Backend, spec.Family())
		if err != nil {
			return cnierr.Config("portmap: %v", err)
		}
		if err := be.AddPortMappings(spec); err != nil {
			return cnierr.Wrap(err, "portmap: publish ports")
		}
		done = append(done, func() { _ = be.DelPortMappings(spec) })
		if err := netfilter.FlushUDP(spec.Family(), udpPorts(spec.Mappings)); err != nil {
			return cnierr.Wrap(err, "portmap")
		}
	}
	return nil
}

// enableHairpin finds the host interface towards the container (its bridge)
// and, for IPv4, lets 127.0.0.1:hostPort be DNATed out of it: the kernel
// drops such packets as martians unless route_localnet is set there.
func enableHairpin(f netfilter.Family, containerIP net.IP) (string, error) {
	routes, err := netlink.RouteGet(containerIP)
	if err != nil || len(routes) == 0 {
		return "", fmt.Errorf("find the host interface towards %s: %v", containerIP, err)
	}
	link, err := netlink.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return "", fmt.Errorf("find the host interface towards %s: %v", containerIP, err)
	}
	name := link.Attrs().Name
	if f == netfilter.IPv4 {
		key := fmt.Sprintf("net/ipv4/conf/%s/route_localnet", name)
		if err := procsys.Set(key, "1"); err != nil {
			return "", fmt.Errorf("set %s: %v", key, err)
		}
	}
	return name, nil
}

// Del removes this attachment's rules; it needs neither prevResult nor the netns.
func Del(args *skel.CmdArgs) error {
	c, err := LoadConfig(args.StdinData)
	if err != nil {
		return err
	}
	o := ownerOf(c, args)
	store := state.New(c.StateDir)
	var rec netfilter.PortMapRecord
	found, err := store.Load(netfilter.KindPortMap, o.Tag(), &rec)
	if err != nil {
		return cnierr.IO("portmap: %v", err)
	}
	if !found {
		if len(c.mappings) == 0 {
			return nil // no record and nothing to publish: ADD installed nothing
		}
		// No record (lost, or written by an older version): search every backend by tag.
		byTag := netfilter.PortMapSpec{Owner: o, Mappings: c.mappings}
		for _, name := range netfilter.AvailableBackends() {
			if err := remove(name, netfilter.BothFamilies, []netfilter.PortMapSpec{byTag, byTag}); err != nil {
				return err
			}
		}
		return nil
	}
	if err := removeRecord(rec); err != nil {
		return err
	}
	if err := store.Remove(netfilter.KindPortMap, o.Tag()); err != nil {
		return cnierr.IO("portmap: %v", err)
	}
	return nil
}

// removeRecord deletes the rules rec says were installed.
func removeRecord(rec netfilter.PortMapRecord) error {
	families := make([]netfilter.Family, len(rec.Specs))
	for i, s := range rec.Specs {
		families[i] = s.Family()
	}
	return remove(rec.Backend, families, rec.Specs)
}

// remove deletes specs[i], which belongs to families[i], through backend name.
func remove(name string, families []netfilter.Family, specs []netfilter.PortMapSpec) error {
	backends, err := netfilter.CleanupBackends(name, families)
	if err != nil {
		return cnierr.Config("portmap: %v", err)
	}
	for i, f := range families {
		be, ok := backends[f]
		if !ok {
			continue
		}
		if err := be.DelPortMappings(specs[i]); err != nil {
			return cnierr.Wrap(err, "portmap: remove published ports")
		}
		if err := netfilter.FlushUDP(f, udpPorts(specs[i].Mappings)); err != nil {
			return cnierr.Wrap(err, "portmap")
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
	var rec netfilter.PortMapRecord
	found, err := state.New(c.StateDir).Load(netfilter.KindPortMap, ownerOf(c, args).Tag(), &rec)
	if err != nil {
		return cnierr.IO("portmap: %v", err)
	}
	backend := rec.Backend
	if !found {
		backend = netfilter.Resolve(c.Backend, c.needsIPTables())
	}
	for f, addr := range containerAddrs(prev) {
		be, err := netfilter.New(backend, f)
		if err != nil {
			return cnierr.Config("portmap: %v", err)
		}
		spec := specFor(c, args, f, addr)
		if err := be.CheckPortMappings(spec); err != nil {
			return fmt.Errorf("portmap: %v", err)
		}
	}
	return nil
}

// Status reports readiness: the configured backend must be usable.
func Status(args *skel.CmdArgs) error {
	c, err := LoadConfig(args.StdinData)
	if err != nil {
		return err
	}
	backend := netfilter.Resolve(c.Backend, c.needsIPTables())
	_, err = netfilter.New(backend, netfilter.IPv4)
	if err == nil && backend == netfilter.NameIPTables {
		err = netfilter.ProbeIPTables(netfilter.IPv4)
	}
	if err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "portmap: "+err.Error(), "")
	}
	return nil
}
