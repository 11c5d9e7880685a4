// Package hostlocal is the host-local IPAM plugin: addresses from configured
// ranges, reserved as files on the node, safe under concurrent plugin runs.
package hostlocal

import (
	"net"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
	"github.com/dockernet/cni-plugins/plugins/pkg/timeline"
)

// Add reserves one address per range set and prints the result.
func Add(args *skel.CmdArgs) error {
	conf, cniVersion, err := LoadConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	timeline.Mark("config")
	result, err := Allocate(conf, args.ContainerID, args.IfName)
	if err != nil {
		return err
	}
	timeline.Mark("allocate")
	return types.PrintResult(result, cniVersion)
}

// Allocate does the work of ADD; on any error nothing stays reserved.
func Allocate(conf *IPAMConfig, id, ifname string) (*current.Result, error) {
	result, _, err := AllocateNoting(conf, id, ifname)
	return result, err
}

// AllocateNoting is Allocate that also says which of the addresses are
// first uses: never handed out before by this store (first_use.go).
func AllocateNoting(conf *IPAMConfig, id, ifname string) (result *current.Result, firstUse []net.IP, err error) {
	requested, err := assignRequested(conf)
	if err != nil {
		return nil, nil, err
	}
	store, err := OpenStore(conf.DataDir, conf.Name)
	if err != nil {
		return nil, nil, cnierr.IO("host-local: %v", err)
	}
	defer store.Close()
	timeline.Mark("store-lock")

	if have, err := store.Lookup(id, ifname); err != nil {
		return nil, nil, cnierr.IO("host-local: %v", err)
	} else if len(have) > 0 {
		return nil, nil, cnierr.Config("host-local: container %s interface %s already holds %v on network %q; DEL it before adding it again", id, ifname, have, conf.Name)
	}

	result = &current.Result{CNIVersion: current.ImplementedSpecVersion, Routes: conf.Routes}
	var reserved []net.IP
	undo := func() {
		for _, a := range reserved {
			_ = store.ReleaseAddr(a, id, ifname)
		}
		_ = os.Remove(store.indexPath(id, ifname))
	}
	for i, set := range conf.Ranges {
		ipc, first, err := allocate(store, set, i, id, ifname, requested[i])
		if err != nil {
			undo()
			return nil, nil, err
		}
		reserved = append(reserved, ipc.Address.IP)
		result.IPs = append(result.IPs, ipc)
		if first {
			firstUse = append(firstUse, ipc.Address.IP)
		}
	}
	if conf.ResolvConf != "" {
		dns, err := parseResolvConf(conf.ResolvConf)
		if err != nil {
			undo()
			return nil, nil, cnierr.Config("host-local: resolvConf %s: %v", conf.ResolvConf, err)
		}
		result.DNS = *dns
	}
	return result, firstUse, nil
}

// Del releases every address of the attachment; it is idempotent.
func Del(args *skel.CmdArgs) error {
	conf, _, err := LoadConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	store, err := OpenStore(conf.DataDir, conf.Name)
	if err != nil {
		return cnierr.IO("host-local: %v", err)
	}
	defer store.Close()
	if err := store.Release(args.ContainerID, args.IfName); err != nil {
		return cnierr.IO("host-local: %v", err)
	}
	return nil
}

// Check verifies the attachment still holds an address.
func Check(args *skel.CmdArgs) error {
	conf, _, err := LoadConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	store, err := OpenStore(conf.DataDir, conf.Name)
	if err != nil {
		return cnierr.IO("host-local: %v", err)
	}
	defer store.Close()
	have, err := store.Lookup(args.ContainerID, args.IfName)
	if err != nil {
		return cnierr.IO("host-local: %v", err)
	}
	if len(have) == 0 {
		return cnierr.Config("host-local: no address is reserved for container %s interface %s on network %q", args.ContainerID, args.IfName, conf.Name)
	}
	return nil
}

// Status reports whether an ADD could succeed now: the config parses,
// the store can be locked and written, and every range set has a free
// address. Otherwise error 50 says which.
func Status(args *skel.CmdArgs) error {
	conf, _, err := LoadConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	store, err := OpenStore(conf.DataDir, conf.Name)
	if err != nil {
		return cnierr.Unavailable("host-local: %v", err)
	}
	defer store.Close()
	if err := store.writable(); err != nil {
		return cnierr.Unavailable("host-local: the reservation store cannot be written: %v", err)
	}
	for i, set := range conf.Ranges {
		free, err := store.hasFree(set)
		if err != nil {
			return cnierr.Unavailable("host-local: %v", err)
		}
		if !free {
			return cnierr.Unavailable("host-local: range set %d (%s) of network %q is exhausted: every address is reserved; release some or add a range", i, set, conf.Name)
		}
	}
	return nil
}
