package bridgeplugin

import (
	"errors"
	"strings"
	"syscall"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/vishvananda/netlink"

	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter/reference"
)

// hashNamed reports whether name is prefix and the hex digits of a tag
// that Owner.HostVeth keeps: the shape of the host veths this plugin
// makes ("veth") and of the pairs DEL retires ("vgone", veth_retire.go).
func hashNamed(name, prefix string) bool {
	hash, ok := strings.CutPrefix(name, prefix)
	if !ok || len(hash) != netfilter.VethHashLen {
		return false
	}
	for _, c := range []byte(hash) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// GC removes what this network holds for attachments not in
// cni.dev/valid-attachments (CNI 1.1): their masquerade and forwarding
// state (by record), their host veths on the bridge, and, through the
// IPAM plugin's own GC, their addresses; then the state of any network
// left without attachments. No attachment of another network.
func GC(args *skel.CmdArgs) error {
	n, err := LoadConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	keep, veths, live := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, a := range n.ValidAttachments {
		o := netfilter.Owner{Network: n.Name, ContainerID: a.ContainerID, IfName: a.IfName}
		keep[o.Tag()], veths[o.HostVeth()], live[a.ContainerID] = true, true, true
	}
	env := attachment.HostEnv(n.StateDir)
	errs := []error{attachment.Collect(env, "bridge", n.Name, keep, attachment.Masquerade, attachment.Forwarding)}
	errs = append(errs, gcLinks(n, keep), gcVeths(n.BrName, veths), env.PruneMembers(), releaseHost(n))
	if n.IPMasq { // what the reference set up before the node switched
		if err := reference.Collect(n.Name, live, netfilter.Options{}); err != nil {
			errs = append(errs, cnierr.Wrap(err, "bridge: GC of the reference plugin's masquerade"))
		}
	}
	if n.isLayer3() {
		if _, err := execIPAM(n.IPAM.Type, "GC", args.StdinData); err != nil {
			errs = append(errs, cnierr.Wrap(err, "bridge: IPAM plugin "+n.IPAM.Type+" GC"))
		}
	}
	return errors.Join(errs...)
}

// gcVeths deletes the host veths on bridge, named as this plugin names
// them, that belong to no valid attachment, and the host end of any pair
// a DEL retired whose deleting child did not finish (veth_retire.go).
func gcVeths(bridge string, keep map[string]bool) error {
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		return nil // no bridge: no veths
	}
	links, err := netlink.LinkList()
	if err != nil {
		return cnierr.Wrap(err, "bridge: GC: list links")
	}
	var errs []error
	for _, l := range links {
		a := l.Attrs()
		if hashNamed(a.Name, retiredPrefix) && l.Type() == "veth" {
			if err := netlink.LinkDel(l); err != nil && !errors.Is(err, syscall.ENODEV) { // its child was quicker
				errs = append(errs, err)
			}
			continue
		}
		if a.MasterIndex != br.Attrs().Index || !hashNamed(a.Name, netfilter.VethPrefix) || keep[a.Name] {
			continue
		}
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return cnierr.Wrap(err, "bridge: GC: delete veths")
	}
	return nil
}
