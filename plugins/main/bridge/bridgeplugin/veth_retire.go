package bridgeplugin

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// Deleting a veth pair is DEL's slowest step and none of it is ours: the
// kernel unregisters both ends and waits, in the caller's context, for an
// RCU barrier and the devices' last references (netdev_run_todo). DEL
// instead retires the pair, which takes a few netlink requests: both ends
// down (no frame crosses it from then on), the host end off the bridge,
// both renamed out of the way (the container's interface name and the
// host end's derived name are free for the next ADD at once); and a
// forked child (link_deleter.go), which the runtime does not wait for,
// deletes it. Anything that fails on the way makes DEL delete the pair
// itself. A pair left retired (this process or its child killed, the
// machine stopped) goes with the container's netns, at the container's
// next DEL (delLinks looks for the retired name too) or at the network's
// next GC, which deletes every retired host end it finds.
// DNET_SYNC_VETH_DELETE=1 in the environment makes DEL delete the pair
// itself, as before (a comparison for the bench); so does a host where
// nothing reaps the child once DEL has exited (reaper.go).

// retiredPrefix starts the name both ends of a retired pair are given.
const retiredPrefix = "vgone"

// retiredName is what o's pair is renamed to; it keeps HostVeth's hash.
func retiredName(o netfilter.Owner) string { return retiredPrefix + o.VethHash() }

// removeLinks takes o's veth pair away: retired when it can be, else
// deleted here. A retired pair's deletion is handed off by handOff, which
// DEL calls once its other parts are done (nil when there is nothing to
// hand off): where the child is a fork (vmchild_fork.go), its copy
// of the address space would make each page they write fault again (copy
// on write), about 40 pages of a DEL's, had it started while they ran.
func removeLinks(n *NetConf, o netfilter.Owner, args *skel.CmdArgs) (handOff func() error, err error) {
	reaps := hostReaping(n.StateDir)
	if os.Getenv("DNET_SYNC_VETH_DELETE") == "1" || reaps == reapNone {
		return nil, delLinks(o, args)
	}
	host, err := netlink.LinkByName(o.HostVeth())
	if err != nil {
		return nil, delLinks(o, args) // not there under its name: the fallbacks
	}
	if retireErr := retirePair(host, o, args); retireErr != nil {
		return nil, delRetired(host, retireErr)
	}
	return func() error {
		var noting *deleterNoting
		if reaps == reapUnknown {
			noting = prepareNote(n.StateDir)
		}
		pid, err := startLinkDeleter(retiredName(o))
		noting.done(pid)
		if err != nil {
			return delRetired(host, err)
		}
		return nil
	}, nil
}

// delRetired deletes host's pair here, after retiring it or handing it
// off failed with why.
func delRetired(host netlink.Link, why error) error {
	if err := netlink.LinkDel(host); err != nil && !errors.Is(err, syscall.ENODEV) {
		return fmt.Errorf("delete %s (after retiring it or handing it off failed: %v): %w", host.Attrs().Name, why, err)
	}
	return nil
}

// retirePair makes host's pair inert and nameless to ADD; the child that
// deletes it starts later, in the host netns (removeLinks).
func retirePair(host netlink.Link, o netfilter.Owner, args *skel.CmdArgs) error {
	gone := retiredName(o)
	if args.Netns != "" {
		peer := host.Attrs().ParentIndex
		err := ns.WithNetNSPath(args.Netns, func(ns.NetNS) error {
			c, err := netlink.LinkByName(args.IfName)
			if err != nil {
				return err
			}
			if c.Attrs().Index != peer {
				return fmt.Errorf("%s in %s is not the peer of %s", args.IfName, args.Netns, host.Attrs().Name)
			}
			if err := netlink.LinkSetDown(c); err != nil {
				return err
			}
			return netlink.LinkSetName(c, gone)
		})
		if err != nil {
			return err
		}
	}
	if err := netlink.LinkSetDown(host); err != nil {
		return err
	}
	if err := netlink.LinkSetNoMaster(host); err != nil {
		return err
	}
	return netlink.LinkSetName(host, gone)
}
