// Command floor is the kernel's floor under a bridge ADD, shaped as a CNI
// plugin so the bench times it exactly as it times ours: the same kernel
// objects (a bridge, a veth pair with one end on the bridge and the other
// moved into the container's netns as eth0, an address, a default route,
// both ends up) through netlink, and nothing else: no config beyond
// CNI_* and the bridge's name, no IPAM, no records, no netfilter. Its
// address comes from the container ID's hash. DEL deletes the veth.
package main

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/dockernet/cni-plugins/plugins/pkg/timeline"
)

// bridgeName is the bridge the floor attaches to: the conf's "bridge"
// (the bench's docker0 when our plugins filled the host first), else its own.
var bridgeName = "floor0"

func main() {
	timeline.Mark("main")
	runtime.LockOSThread()
	var conf struct {
		Bridge string `json:"bridge"`
	}
	if stdin, err := io.ReadAll(os.Stdin); err == nil && json.Unmarshal(stdin, &conf) == nil && conf.Bridge != "" {
		bridgeName = conf.Bridge
	}
	var err error
	switch os.Getenv("CNI_COMMAND") {
	case "ADD":
		err = add(os.Getenv("CNI_CONTAINERID"), os.Getenv("CNI_NETNS"))
	case "DEL":
		err = del(os.Getenv("CNI_CONTAINERID"))
	case "VERSION":
		fmt.Print(`{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}`)
	}
	if err != nil {
		fmt.Printf(`{"cniVersion":"1.0.0","code":999,"msg":%q}`, err.Error())
		os.Exit(1)
	}
	timeline.Flush()
}

func hostVeth(id string) string {
	h := fnv.New32a()
	h.Write([]byte(id))
	return fmt.Sprintf("flr%08x", h.Sum32())
}

func add(id, nsPath string) error {
	br, err := netlink.LinkByName(bridgeName)
	if err != nil {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = bridgeName
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil && !os.IsExist(err) {
			return err
		}
		if br, err = netlink.LinkByName(bridgeName); err != nil {
			return err
		}
		gw := &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(10, 250, 0, 1), Mask: net.CIDRMask(16, 32)}}
		if err := netlink.AddrAdd(br, gw); err != nil && !os.IsExist(err) {
			return err
		}
		if err := netlink.LinkSetUp(br); err != nil {
			return err
		}
	}
	timeline.Mark("bridge")
	target, err := netns.GetFromPath(nsPath)
	if err != nil {
		return err
	}
	defer target.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MasterIndex = hostVeth(id), br.Attrs().Index
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: "eth0", PeerNamespace: netlink.NsFd(target)}
	if err := netlink.LinkAdd(veth); err != nil {
		return err
	}
	if err := netlink.LinkSetUp(veth); err != nil {
		return err
	}
	timeline.Mark("veth")
	h := fnv.New32a()
	h.Write([]byte(id))
	n := h.Sum32()
	ip := net.IPv4(10, 250, byte(n>>8)|1, byte(n)|2)
	in, err := netlink.NewHandleAt(target)
	if err != nil {
		return err
	}
	defer in.Close()
	eth0, err := in.LinkByName("eth0")
	if err != nil {
		return err
	}
	if err := in.AddrAdd(eth0, &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(16, 32)}}); err != nil {
		return err
	}
	if err := in.LinkSetUp(eth0); err != nil {
		return err
	}
	if err := in.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: net.IPv4(10, 250, 0, 1)}); err != nil {
		return err
	}
	timeline.Mark("addresses")
	fmt.Printf(`{"cniVersion":"1.0.0","ips":[{"address":"%s/16"}]}`, ip)
	return nil
}

func del(id string) error {
	l, err := netlink.LinkByName(hostVeth(id))
	if err != nil {
		return nil // gone already
	}
	defer timeline.Mark("veth-deleted")
	return netlink.LinkDel(l)
}
