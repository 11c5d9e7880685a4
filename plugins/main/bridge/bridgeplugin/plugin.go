// Package bridgeplugin is the bridge plugin: a Linux bridge on the host, a
// veth pair into the container, addresses from IPAM, and outbound masquerade.
package bridgeplugin

import (
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
	"github.com/dockernet/cni-plugins/plugins/pkg/handoff"
	"github.com/dockernet/cni-plugins/plugins/pkg/ipaddr"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/oneproc"
	"github.com/dockernet/cni-plugins/plugins/pkg/timeline"
)

func owner(n *NetConf, args *skel.CmdArgs) netfilter.Owner {
	return netfilter.Owner{Network: n.Name, ContainerID: args.ContainerID, IfName: args.IfName}
}

// undoStack runs cleanups in reverse when ADD fails part-way.
type undoStack []func()

func (u *undoStack) push(f func()) { *u = append(*u, f) }
func (u *undoStack) run() {
	for i := len(*u) - 1; i >= 0; i-- {
		(*u)[i]()
	}
}

// Add attaches the container to the bridge and prints the result.
func Add(args *skel.CmdArgs) (err error) {
	n, err := LoadConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	if err := n.validateForAdd(); err != nil {
		return err
	}
	timeline.Mark("config")
	netns, err := ns.GetNS(args.Netns)
	if err != nil {
		return cnierr.Env("bridge: cannot open container netns %q: %v", args.Netns, err)
	}
	defer netns.Close()
	hostNS, err := ns.GetCurrentNS()
	if err != nil {
		return cnierr.Wrap(err, "bridge: open host netns")
	}
	defer hostNS.Close()
	host := rtnl() // this goroutine is in the host netns until netns.Do
	defer host.Close()
	timeline.Mark("netns")

	var undo undoStack
	defer func() {
		if err != nil {
			undo.run()
		}
	}()
	// The IPAM plugin runs while the links are made: the two are independent.
	pending := startIPAM(n, args)
	undo.push(pending.release)

	br, err := ensureBridge(host, n.BrName, n.MTU, n.PromiscMode)
	if err != nil {
		return cnierr.Wrap(err, "bridge")
	}
	if err := isolateBridgeIPv6(n); err != nil {
		return err
	}
	timeline.Mark("bridge")
	o := owner(n, args)
	if err := recordLink(n, o, args.StdinData); err != nil {
		return err
	}
	timeline.Mark("link-record")
	undo.push(func() { _ = forgetLink(n, o); _ = releaseHost(n) })
	hostIf, contIf, err := setupVeth(host, n, args, o, netns, hostNS, br)
	if err != nil {
		return err
	}
	undo.push(func() { _ = delLinks(o, args) })
	timeline.Mark("veth-attach")

	result := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: br.Name, Mac: br.HardwareAddr.String()},
			{Name: hostIf.Name, Mac: hostIf.HardwareAddr.String()},
			{Name: contIf.Name, Mac: contIf.HardwareAddr.String(), Sandbox: args.Netns},
		},
	}

	if n.isLayer3() {
		ipamRes, err := pending.wait()
		if err != nil {
			return cnierr.Wrap(err, "bridge: IPAM plugin "+n.IPAM.Type)
		}
		timeline.Mark("ipam-wait")
		ipamResult, err := current.NewResultFromResult(ipamRes)
		if err != nil {
			return cnierr.Wrap(err, "bridge: convert IPAM result")
		}
		if len(ipamResult.IPs) == 0 {
			return cnierr.Config("bridge: IPAM plugin %s returned no address for network %q", n.IPAM.Type, n.Name)
		}
		result.IPs, result.Routes, result.DNS = ipamResult.IPs, ipamResult.Routes, ipamResult.DNS
		if err := configureL3(host, n, args, result, netns, br, contIf, pending.firstUse); err != nil {
			return err
		}
		if err := iccForIPv6(n, result); err != nil {
			return err
		}
		timeline.Mark("forwarding")
		// Masquerade and forwarding: one netfilter transaction.
		env := attachment.HostEnv(n.StateDir)
		// What a crash left of a network whose attachments are all gone;
		// this ADD's own network joins again, below, if it was one.
		_ = env.CollectNetworks()
		timeline.Mark("collect-networks")
		change := env.Begin("bridge")
		if n.IPMasq {
			addMasquerade(change, n, o, result)
		}
		addForwarding(change, n, o, result)
		timeline.Mark("netfilter-queue")
		if err := change.Commit(); err != nil {
			return err
		}
		timeline.Mark("netfilter")
		undo.push(func() { _ = delNetfilter(env, n, o) })
	} else if !n.DisableContainerInterface {
		if err := netns.Do(func(ns.NetNS) error { skipDAD(n, args.IfName); return linkUp(args.IfName) }); err != nil {
			return cnierr.Wrap(err, "bridge")
		}
	}

	handoff.AllowIf(attachment.HostEnv(n.StateDir).Reaps)
	return types.PrintResult(result, n.CNIVersion)
}

// setupVeth makes the veth pair and puts its host end on the bridge.
func setupVeth(host *netlink.Handle, n *NetConf, args *skel.CmdArgs, o netfilter.Owner, netns, hostNS ns.NetNS, br *netlink.Bridge) (net.Interface, net.Interface, error) {
	name := o.HostVeth()
	// A host veth of this name is a leftover of a crashed ADD of the same attachment.
	_ = delLinkByName(host, name)

	var hostIf, contIf net.Interface
	err := netns.Do(func(ns.NetNS) error {
		oneproc.ReserveStack(oneproc.NetlinkStack)
		cont := rtnl()
		defer cont.Close()
		if _, err := cont.LinkByName(args.IfName); err == nil {
			return cnierr.Config("bridge: interface %s already exists in netns %s; DEL the attachment or pick another CNI_IFNAME", args.IfName, args.Netns)
		}
		var err error
		if contIf, err = makeVeth(cont, args.IfName, name, n.MTU, n.mac, hostNS); err != nil {
			return cnierr.Wrap(err, "bridge: create veth pair")
		}
		return nil
	})
	if err != nil {
		return hostIf, contIf, err
	}
	timeline.Mark("veth-create")
	// The host end is down and its peer too: no IPv6 packet has left it
	// yet, and none will.
	hostLink, err := host.LinkByName(name)
	if err == nil {
		hostIf = iface(hostLink)
		err = quietBridgePort(host, hostLink)
	}
	timeline.Mark("veth-ipv6-off")
	if err == nil {
		err = host.LinkSetMaster(hostLink, br)
	}
	if err == nil && n.HairpinMode {
		err = host.LinkSetHairpin(hostLink, true)
	}
	if err == nil && (n.PortIsolation || (!*n.ICC && !brNetfilter())) {
		err = host.LinkSetIsolated(hostLink, true)
	}
	if err == nil {
		err = host.LinkSetUp(hostLink)
	}
	if err != nil {
		_ = delLinks(o, args)
		return hostIf, contIf, cnierr.Wrap(err, fmt.Sprintf("bridge: attach %s to %s", name, br.Name))
	}
	return hostIf, contIf, nil
}

// configureL3 addresses the container, adds its routes, and makes the bridge its gateway.
func configureL3(host *netlink.Handle, n *NetConf, args *skel.CmdArgs, result *current.Result, netns ns.NetNS, br *netlink.Bridge, contIf net.Interface, firstUse []net.IP) error {
	contIdx := 2
	var gws []*net.IPNet
	for _, ipc := range result.IPs {
		ipc.Interface = current.Int(contIdx)
		if ipc.Gateway == nil && n.IsGW {
			ipc.Gateway = ipaddr.Next(ipc.Address.IP.Mask(ipc.Address.Mask))
		}
		if n.IsGW && ipc.Gateway != nil {
			gws = append(gws, &net.IPNet{IP: ipc.Gateway, Mask: ipc.Address.Mask})
		}
		if n.IsDefaultGW && ipc.Gateway != nil {
			addDefaultRoute(result, ipc.Gateway)
		}
	}
	if !n.DisableContainerInterface {
		err := netns.Do(func(ns.NetNS) error {
			oneproc.ReserveStack(oneproc.NetlinkStack)
			cont := rtnl()
			defer cont.Close()
			// Before the link goes up, so it never sends an IPv6 packet.
			if !n.KeepIPv6LinkLocal && !hasIPv6(result) {
				if err := disableIPv6(args.IfName); err != nil {
					return err
				}
			} else {
				skipDAD(n, args.IfName)
			}
			timeline.Mark("container-ipv6")
			if err := configureIface(cont, args.IfName, contIf.Index, result); err != nil {
				return err
			}
			timeline.Mark("container-addresses")
			announce(cont, contIf, mayBeReused(result.IPs, firstUse))
			timeline.Mark("announce")
			return nil
		})
		if err != nil {
			return cnierr.Wrap(err, "bridge: configure "+args.IfName)
		}
		forgetNeighbours(host, br, result.IPs)
	}
	for _, gw := range gws {
		if err := ensureGatewayAddr(host, br, gw, n.ForceAddress); err != nil {
			return cnierr.Config("%v", err)
		}
	}
	timeline.Mark("gateway")
	if n.IsGW {
		return enableForwarding(n, result.IPs)
	}
	return nil
}

// addDefaultRoute adds a default route via gw unless the family has one already.
func addDefaultRoute(result *current.Result, gw net.IP) {
	dst := &net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}
	if gw.To4() == nil {
		dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
	}
	for _, r := range result.Routes {
		if r.Dst.String() == dst.String() {
			return
		}
	}
	result.Routes = append(result.Routes, &types.Route{Dst: *dst, GW: gw})
}

func linkUp(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	return netlink.LinkSetUp(l)
}

// delContainerLink deletes the container's interface (and so its veth peer).
// A missing namespace or interface is not an error: there is nothing to delete.
func delContainerLink(netnsPath, ifName string) error {
	if netnsPath == "" {
		return nil
	}
	err := ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
		err := delLinkByName(perRequest(), ifName)
		if errors.Is(err, errLinkNotFound) {
			return nil
		}
		return err
	})
	var nsGone ns.NSPathNotExistErr
	if errors.As(err, &nsGone) {
		return nil
	}
	return err
}

// Del undoes ADD; it succeeds when there is nothing left to undo. Its
// three parts are independent and run at once, so DEL takes as long as
// the slowest of them rather than their sum; the veth pair's deletion,
// the kernel's slowest step, is handed off (veth_retire.go).
// The netfilter part is one transaction, whose nftables socket stays open
// until the process exits: a socket closing after a deletion holds
// nf_tables' commit mutex until the kernel has freed the transaction (an
// RCU grace period), and deleting the veth needs that mutex too.
func Del(args *skel.CmdArgs) error {
	n, err := LoadConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	o := owner(n, args)
	timeline.Mark("config")
	// The parts run at once: each marks when it is done (the timeline
	// shows them in the order they finished).
	var handOff func() error
	parts := []func() error{
		func() error {
			defer timeline.Mark("links-removed")
			var err error
			if handOff, err = removeLinks(n, o, args); err != nil {
				return cnierr.Wrap(err, "bridge: delete "+args.IfName)
			}
			return forgetLink(n, o)
		},
		func() error {
			defer timeline.Mark("netfilter-removed")
			return errors.Join(delNetfilter(attachment.HostEnv(n.StateDir), n, o), delReferenceMasq(n, args))
		},
	}
	if n.isLayer3() {
		parts = append(parts, func() error {
			defer timeline.Mark("ipam-released")
			if err := ipamDel(n, args); err != nil {
				return cnierr.Wrap(err, "bridge: IPAM plugin "+n.IPAM.Type)
			}
			return nil
		})
	}
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, part := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			oneproc.ReserveStack(oneproc.NetlinkStack)
			errs[i] = part()
		}()
	}
	wg.Wait()
	if handOff != nil { // the retired pair's deletion, whatever else failed
		if err := handOff(); err != nil {
			errs = append(errs, cnierr.Wrap(err, "bridge: delete "+args.IfName))
		}
		timeline.Mark("links-handed-off")
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	// This network went with the last attachment's removal; any other
	// network a crash left without attachments goes now.
	if err := attachment.HostEnv(n.StateDir).CollectNetworks(); err != nil {
		return err
	}
	timeline.Mark("collect-networks")
	return releaseHost(n)
}

// delNetfilter removes o's masquerade and forwarding in one transaction.
func delNetfilter(env attachment.Env, n *NetConf, o netfilter.Owner) error {
	change := env.Begin("bridge")
	delMasquerade(change, n, o)
	delForwarding(change, n, o)
	return change.Commit()
}

// delLinks deletes the veth pair from the host side, found by its derived
// name, without entering the container; then by its retired name (a DEL
// killed after retiring it, before its child deleted it); the container
// side is the fallback for a pair whose host end was renamed or moved.
func delLinks(o netfilter.Owner, args *skel.CmdArgs) error {
	for _, name := range []string{o.HostVeth(), retiredName(o)} {
		if err := delLinkByName(perRequest(), name); !errors.Is(err, errLinkNotFound) {
			return err
		}
	}
	return delContainerLink(args.Netns, args.IfName)
}

// delFamilies are the families whose rules DEL must look at: those of
// prevResult when the runtime sent it, else both.
func delFamilies(n *NetConf) []netfilter.Family {
	if n.PrevResult != nil {
		if prev, err := current.NewResultFromResult(n.PrevResult); err == nil && len(prev.IPs) > 0 {
			seen := map[netfilter.Family]bool{}
			var out []netfilter.Family
			for _, ipc := range prev.IPs {
				f := netfilter.FamilyOf(ipc.Address.IP)
				if !seen[f] {
					seen[f] = true
					out = append(out, f)
				}
			}
			return out
		}
	}
	return netfilter.BothFamilies
}
