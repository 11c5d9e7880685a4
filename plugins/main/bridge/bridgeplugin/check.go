package bridgeplugin

import (
	"fmt"

	"github.com/containernetworking/cni/pkg/skel"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
)

// Check verifies what ADD made is still in place: the interfaces, the
// addresses, the routes, the masquerade and the forwarding rules.
func Check(args *skel.CmdArgs) error {
	n, err := LoadConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	if n.PrevResult == nil {
		return cnierr.Config("bridge: CHECK needs the prevResult of ADD for network %q", n.Name)
	}
	if n.isLayer3() {
		if err := ipamCheck(n, args); err != nil {
			return cnierr.Wrap(err, "bridge: IPAM plugin "+n.IPAM.Type)
		}
	}
	prev, err := current.NewResultFromResult(n.PrevResult)
	if err != nil {
		return cnierr.Decode("bridge: cannot read prevResult: %v", err)
	}
	var contIf *current.Interface
	for _, iface := range prev.Interfaces {
		if iface.Name == args.IfName && iface.Sandbox != "" {
			contIf = iface
		}
	}
	if contIf == nil {
		return cnierr.Config("bridge: prevResult lists no interface %s in a sandbox", args.IfName)
	}

	o := owner(n, args)
	hostLink, err := netlink.LinkByName(o.HostVeth())
	if err != nil {
		return cnierr.Drift("bridge: host veth %s of container %s is missing: %v", o.HostVeth(), args.ContainerID, err)
	}
	br, err := findBridge(perRequest(), n.BrName)
	if err != nil {
		return cnierr.Drift("bridge: %v", err)
	}
	if hostLink.Attrs().MasterIndex != br.Index {
		return cnierr.Drift("bridge: host veth %s is not attached to bridge %s", hostLink.Attrs().Name, n.BrName)
	}

	err = ns.WithNetNSPath(args.Netns, func(ns.NetNS) error {
		link, err := netlink.LinkByName(args.IfName)
		if err != nil {
			return fmt.Errorf("container interface %s is missing: %v", args.IfName, err)
		}
		if contIf.Mac != "" && link.Attrs().HardwareAddr.String() != contIf.Mac {
			return fmt.Errorf("container interface %s has MAC %s, ADD gave %s", args.IfName, link.Attrs().HardwareAddr, contIf.Mac)
		}
		if peerIdx, err := vethPeerIndex(args.IfName); err != nil || peerIdx != hostLink.Attrs().Index {
			return fmt.Errorf("container interface %s is not the peer of host veth %s", args.IfName, hostLink.Attrs().Name)
		}
		if n.DisableContainerInterface {
			return nil
		}
		if err := checkAddresses(args.IfName, prev.IPs); err != nil {
			return err
		}
		return checkRoutes(prev.Routes)
	})
	if err != nil {
		return cnierr.Drift("bridge: %v", err)
	}

	if n.IPMasq {
		if err := checkMasquerade(n, o, prev.IPs); err != nil {
			return err
		}
	}
	if n.isLayer3() {
		if err := checkGatewayMode(n, o); err != nil {
			return err
		}
		return checkForwarding(n, o, prev.IPs)
	}
	return nil
}

// Status reports readiness: the bridge plugin needs only a parseable config.
func Status(args *skel.CmdArgs) error {
	n, err := LoadConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	if n.isLayer3() {
		_, err := execIPAM(n.IPAM.Type, "STATUS", args.StdinData)
		return cnierr.Wrap(err, "bridge: IPAM plugin "+n.IPAM.Type)
	}
	return nil
}
