package portmapplugin

import (
	"fmt"
	"net"
	"slices"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"

	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/procsys"
)

// hostSideLinks are the host interfaces the interface plugin before
// portmap made or joined for this container (its bridge, the host end of
// its veth): the only ones portmap may change. The bridge's record names
// its bridge even when prevResult, from an older plugin, does not.
func hostSideLinks(prev *current.Result, br bridgeOf) []string {
	var out []string
	for _, ifc := range prev.Interfaces {
		if ifc.Sandbox == "" && ifc.Name != "" {
			out = append(out, ifc.Name)
		}
	}
	if br.name != "" && !slices.Contains(out, br.name) {
		out = append(out, br.name)
	}
	return out
}

// enableHairpin finds the host interface towards the container (its
// bridge) and, for IPv4, lets 127.0.0.1:hostPort be DNATed out of it: the
// kernel drops such packets as martians unless route_localnet is set
// there. It touches only an interface of ours (hostSideLinks): when the
// route to the container leaves by another one (the host's uplink, say,
// for a network without a route of its own, or an interface plugin that
// reports no host side), it changes nothing and returns "", and the
// mappings work from outside only, without hairpin masquerade or
// 127.0.0.1. What it turns on is noted in changed, for a failed ADD to
// give back.
func enableHairpin(f netfilter.Family, containerIP net.IP, ours []string, changed *localnetChange) (string, error) {
	routes, err := netlink.RouteGet(containerIP)
	if err != nil || len(routes) == 0 {
		return "", fmt.Errorf("find the host interface towards %s: %v", containerIP, err)
	}
	link, err := netlink.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return "", fmt.Errorf("find the host interface towards %s: %v", containerIP, err)
	}
	name := link.Attrs().Name
	if !slices.Contains(ours, name) {
		return "", nil
	}
	if f == netfilter.IPv4 {
		key := localnetKey(name)
		if procsys.Get(key) == "1" {
			return name, nil
		}
		if err := procsys.Set(key, "1"); err != nil {
			return "", fmt.Errorf("set %s: %v", key, err)
		}
		changed.ifaces = append(changed.ifaces, name)
	}
	return name, nil
}

func localnetKey(ifName string) string {
	return fmt.Sprintf("net/ipv4/conf/%s/route_localnet", ifName)
}

// localnetChange is the route_localnet an ADD turned on.
type localnetChange struct{ ifaces []string }

// undo turns route_localnet off again where this ADD turned it on and no
// recorded attachment's mappings rely on it (another ADD on the same
// bridge may have found it on and recorded its mappings since).
func (l *localnetChange) undo(stateDir string) {
	if len(l.ifaces) == 0 {
		return
	}
	recs, err := attachment.PortMappings.Records(attachment.HostEnv(stateDir))
	if err != nil {
		return // unsure: leave it on
	}
	used := map[string]bool{}
	for _, rec := range recs {
		for _, s := range rec.Specs {
			used[s.HairpinIf] = true
		}
	}
	for _, name := range l.ifaces {
		if !used[name] {
			_ = procsys.Set(localnetKey(name), "0")
		}
	}
}
