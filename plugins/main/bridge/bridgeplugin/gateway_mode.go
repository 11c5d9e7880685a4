package bridgeplugin

import (
	"fmt"

	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
	"github.com/dockernet/cni-plugins/plugins/pkg/procsys"
)

// Docker's gateway modes this plugin implements.
const (
	GatewayModeNAT            = "nat"             // published ports only: direct routing from outside is dropped
	GatewayModeNATUnprotected = "nat-unprotected" // any port of a container is reachable by routing to it
	GatewayModeIsolated       = "isolated"        // no gateway, no route, no masquerade: the containers reach each other only
	GatewayModeRouted         = "routed"          // no masquerade; published container ports and ICMP reachable at the container's address
)

// applyMode makes an isolated or routed network what Docker 28 makes it.
// Isolated: the bridge gets no address, the containers no default route
// and no masquerade, and nothing from outside the bridge reaches them.
// Routed: no masquerade; the rest is the gateway's and the filter's.
func (n *NetConf) applyMode() {
	switch n.GatewayMode {
	case GatewayModeIsolated:
		n.IsGW, n.IsDefaultGW, n.IPMasq = false, false, false
	case GatewayModeRouted:
		n.IPMasq = false
	}
}

// protects reports whether the gateway mode drops direct routing to the
// containers (what it spares aside).
func (n *NetConf) protects() bool { return n.GatewayMode != GatewayModeNATUnprotected }

// Why an attachment got its gateway mode, as its record and dnetctl say.
const (
	ModeWhyConfig     = "set in the network config"
	ModeWhyDocker     = "Docker's default, not a Kubernetes pod"
	ModeWhyKubernetes = "Kubernetes pod %s/%s: every pod reachable by address"
)

// chooseGatewayMode fills in the gateway mode when the config sets none.
//
// Under Kubernetes every pod must reach every pod by address, and Service
// traffic DNATed by kube-proxy on another node arrives here un-DNATed:
// Docker's protection would drop both. Every CRI runtime (containerd,
// CRI-O, the old dockershim) passes K8S_POD_NAMESPACE in CNI_ARGS, and
// delegating plugins (flannel) pass CNI_ARGS on unchanged; Podman sends
// only K8S_POD_NAME and no runtime sends the namespace outside Kubernetes.
// So the namespace, not the config, tells a pod from a Docker-like
// container: flannel's generated delegate config has no mark of its own.
func (n *NetConf) chooseGatewayMode(envArgs string) {
	n.kubernetesPod = envArg(envArgs, "K8S_POD_NAMESPACE") != ""
	if n.GatewayMode != "" {
		n.gatewayModeWhy = ModeWhyConfig
		return
	}
	if ns := envArg(envArgs, "K8S_POD_NAMESPACE"); ns != "" {
		n.GatewayMode = GatewayModeNATUnprotected
		n.gatewayModeWhy = fmt.Sprintf(ModeWhyKubernetes, ns, envArg(envArgs, "K8S_POD_NAME"))
		return
	}
	n.GatewayMode = GatewayModeNAT
	n.gatewayModeWhy = ModeWhyDocker
}

// isolateBridgeIPv6 turns IPv6 off on an isolated network's bridge. It
// has no IPv4 address, but with IPv6 on it would get a link-local one,
// through which the host and the containers (those with IPv6, or
// keepIPv6LinkLocal) would still reach each other. The containers still
// reach each other over IPv6: the bridge forwards frames whatever its
// own addresses.
func isolateBridgeIPv6(n *NetConf) error {
	if n.GatewayMode != GatewayModeIsolated {
		return nil
	}
	if v := procsys.Get("net/ipv6/conf/" + n.BrName + "/disable_ipv6"); v == "" || v == "1" {
		return nil // no IPv6 in this kernel, or off already
	}
	if err := disableIPv6(n.BrName); err != nil {
		return cnierr.Wrap(err, "bridge: gatewayMode isolated: turn IPv6 off on "+n.BrName)
	}
	return nil
}
