// Package portmapplugin is the portmap plugin: host ports forwarded to a
// container's address, as `docker run -p` does.
package portmapplugin

import (
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/utils/sysctl"
	"github.com/vishvananda/netlink"

	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
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

func specFor(c *PortMapConf, args *skel.CmdArgs, f netfilter.Family, addr *net.IPNet) netfilter.PortMapSpec {
	spec := netfilter.PortMapSpec{
		Owner:        netfilter.Owner{Network: c.Name, ContainerID: args.ContainerID, IfName: args.IfName},
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
func Add(args *skel.CmdArgs) (err error) {
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
	var done []netfilter.Backend
	defer func() {
		if err != nil {
			for _, be := range done {
				_ = be.DelPortMappings(specFor(c, args, be.Family(), addrs[be.Family()]).Owner)
			}
		}
	}()
	for _, f := range netfilter.BothFamilies {
		addr := addrs[f]
		if addr == nil {
			continue
		}
		be, err := netfilter.New(c.Backend, f)
		if err != nil {
			return cnierr.Config("portmap: %v", err)
		}
		spec := specFor(c, args, f, addr)
		if err := be.AddPortMappings(spec); err != nil {
			return cnierr.Wrap(err, "portmap: publish ports")
		}
		done = append(done, be)
		if f == netfilter.IPv4 && spec.SNAT {
			if err := enableRouteLocalnet(addr.IP); err != nil {
				return cnierr.Wrap(err, "portmap")
			}
		}
		if err := netfilter.FlushUDP(f, udpPorts(c.mappings)); err != nil {
			return cnierr.Wrap(err, "portmap")
		}
	}
	return types.PrintResult(prev, c.CNIVersion)
}

// enableRouteLocalnet lets 127.0.0.1:hostPort be DNATed out of the interface
// that leads to the container; the kernel drops such packets as martians otherwise.
func enableRouteLocalnet(containerIP net.IP) error {
	routes, err := netlink.RouteGet(containerIP)
	if err != nil || len(routes) == 0 {
		return fmt.Errorf("find the host interface towards %s: %v", containerIP, err)
	}
	link, err := netlink.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return fmt.Errorf("find the host interface towards %s: %v", containerIP, err)
	}
	key := fmt.Sprintf("net/ipv4/conf/%s/route_localnet", link.Attrs().Name)
	if _, err := sysctl.Sysctl(key, "1"); err != nil {
		return fmt.Errorf("set %s: %v", key, err)
	}
	return nil
}

// Del removes this attachment's rules; it needs neither prevResult nor the netns.
func Del(args *skel.CmdArgs) error {
	c, err := LoadConfig(args.StdinData)
	if err != nil {
		return err
	}
	owner := netfilter.Owner{Network: c.Name, ContainerID: args.ContainerID, IfName: args.IfName}
	backends, err := netfilter.CleanupBackends(c.Backend, netfilter.BothFamilies)
	if err != nil {
		return cnierr.Config("portmap: %v", err)
	}
	for _, be := range backends {
		if err := be.DelPortMappings(owner); err != nil {
			return cnierr.Wrap(err, "portmap: remove published ports")
		}
		if err := netfilter.FlushUDP(be.Family(), udpPorts(c.mappings)); err != nil {
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
	for f, addr := range containerAddrs(prev) {
		be, err := netfilter.New(c.Backend, f)
		if err != nil {
			return cnierr.Config("portmap: %v", err)
		}
		if err := be.CheckPortMappings(specFor(c, args, f, addr)); err != nil {
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
	if _, err := netfilter.New(c.Backend, netfilter.IPv4); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "portmap: "+err.Error(), "")
	}
	return nil
}
