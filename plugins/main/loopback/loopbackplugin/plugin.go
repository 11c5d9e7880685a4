// Package loopbackplugin is the loopback plugin: it brings a container's
// lo up, which containerd's CRI requires beside the network plugins, so a
// node needs no plugin from elsewhere.
package loopbackplugin

import (
	"encoding/json"
	"errors"
	"net"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
	"github.com/dockernet/cni-plugins/plugins/pkg/oneproc"
)

func loadConf(stdin []byte) (*types.NetConf, error) {
	conf := &types.NetConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, cnierr.Decode("loopback: cannot parse network config: %v", err)
	}
	if err := version.ParsePrevResult(conf); err != nil {
		return nil, cnierr.Decode("loopback: cannot parse prevResult: %v", err)
	}
	return conf, nil
}

// loopbackAddrs returns lo's first IPv4 and IPv6 addresses, refusing an
// lo that holds anything but loopback addresses.
func loopbackAddrs(lo netlink.Link) (v4, v6 *net.IPNet, err error) {
	addrs, err := netlink.AddrList(lo, netlink.FAMILY_ALL)
	if err != nil {
		return nil, nil, err
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return nil, nil, cnierr.Config("loopback: lo holds the non-loopback address %s; remove it", a.IP)
		}
		if a.IP.To4() != nil && v4 == nil {
			v4 = a.IPNet
		} else if a.IP.To4() == nil && v6 == nil {
			v6 = a.IPNet
		}
	}
	return v4, v6, nil
}

// Add brings lo up and prints it with its addresses, or passes a
// prevResult on unchanged.
func Add(args *skel.CmdArgs) error {
	conf, err := loadConf(args.StdinData)
	if err != nil {
		return err
	}
	var v4, v6 *net.IPNet
	err = ns.WithNetNSPath(args.Netns, func(ns.NetNS) error {
		oneproc.ReserveStack(oneproc.NetlinkStack)
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return err
		}
		v4, v6, err = loopbackAddrs(lo)
		return err
	})
	if err != nil {
		return cnierr.Wrap(err, "loopback: bring lo up in "+args.Netns)
	}
	if conf.PrevResult != nil {
		return types.PrintResult(conf.PrevResult, conf.CNIVersion)
	}
	r := &current.Result{CNIVersion: conf.CNIVersion,
		Interfaces: []*current.Interface{{Name: "lo", Mac: "00:00:00:00:00:00", Sandbox: args.Netns}}}
	for _, a := range []*net.IPNet{v4, v6} {
		if a != nil {
			r.IPs = append(r.IPs, &current.IPConfig{Interface: current.Int(0), Address: *a})
		}
	}
	return types.PrintResult(r, conf.CNIVersion)
}

// Del brings lo down; a netns already gone is not an error.
func Del(args *skel.CmdArgs) error {
	if args.Netns == "" {
		return nil
	}
	err := ns.WithNetNSPath(args.Netns, func(ns.NetNS) error {
		oneproc.ReserveStack(oneproc.NetlinkStack)
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetDown(lo)
	})
	var gone ns.NSPathNotExistErr
	if errors.As(err, &gone) {
		return nil
	}
	if err != nil {
		return cnierr.Wrap(err, "loopback: bring lo down in "+args.Netns)
	}
	return nil
}

// Check verifies lo is up and holds only loopback addresses.
func Check(args *skel.CmdArgs) error {
	if _, err := loadConf(args.StdinData); err != nil {
		return err
	}
	return ns.WithNetNSPath(args.Netns, func(ns.NetNS) error {
		oneproc.ReserveStack(oneproc.NetlinkStack)
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return cnierr.Drift("loopback: %v", err)
		}
		if lo.Attrs().Flags&net.FlagUp == 0 {
			return cnierr.Drift("loopback: lo is down in %s", args.Netns)
		}
		_, _, err = loopbackAddrs(lo)
		return err
	})
}

// Status: loopback needs nothing of the host.
func Status(args *skel.CmdArgs) error {
	_, err := loadConf(args.StdinData)
	return err
}
