package bridgeplugin

import (
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

func TestLoadConfig(t *testing.T) {
	cases := []struct {
		name, conf, envArgs string
		code                uint
		msg                 string
		check               func(*testing.T, *NetConf)
	}{
		{name: "defaults", conf: `{"name":"n","cniVersion":"1.0.0","type":"bridge"}`, check: func(t *testing.T, n *NetConf) {
			if n.BrName != "cni0" || n.IsGW || n.IPMasq {
				t.Errorf("defaults: %+v", n)
			}
			// Docker's filter half, on by default.
			if n.GatewayMode != GatewayModeNAT || !*n.IsolateNetworks || !*n.ICC {
				t.Errorf("filter defaults: gatewayMode %q isolateNetworks %v icc %v", n.GatewayMode, *n.IsolateNetworks, *n.ICC)
			}
		}},
		{name: "filter keys off", conf: `{"name":"n","gatewayMode":"nat-unprotected","isolateNetworks":false,"icc":false}`, check: func(t *testing.T, n *NetConf) {
			if n.GatewayMode != GatewayModeNATUnprotected || *n.IsolateNetworks || *n.ICC {
				t.Errorf("filter keys: gatewayMode %q isolateNetworks %v icc %v", n.GatewayMode, *n.IsolateNetworks, *n.ICC)
			}
		}},
		// What containerd's and CRI-O's CRI send, also through flannel's delegation.
		{name: "kubernetes pod", conf: `{"name":"cbr0","type":"bridge"}`, envArgs: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=3f2a", check: func(t *testing.T, n *NetConf) {
			if n.GatewayMode != GatewayModeNATUnprotected || !strings.Contains(n.gatewayModeWhy, "Kubernetes pod default/web-0") {
				t.Errorf("a Kubernetes pod got gatewayMode %q (%s)", n.GatewayMode, n.gatewayModeWhy)
			}
			if *n.IsolateNetworks {
				t.Error("a Kubernetes pod's network is isolated from other networks by default")
			}
		}},
		{name: "isolation asked for under kubernetes", conf: `{"name":"n","isolateNetworks":true}`, envArgs: "K8S_POD_NAMESPACE=default;K8S_POD_NAME=p", check: func(t *testing.T, n *NetConf) {
			if !*n.IsolateNetworks {
				t.Error("isolateNetworks: true under Kubernetes was dropped")
			}
		}},
		// Podman's CNI backend sends the container name alone.
		{name: "podman container", conf: `{"name":"podman","type":"bridge"}`, envArgs: "IgnoreUnknown=1;K8S_POD_NAME=web", check: func(t *testing.T, n *NetConf) {
			if n.GatewayMode != GatewayModeNAT || n.gatewayModeWhy != ModeWhyDocker {
				t.Errorf("a Podman container got gatewayMode %q (%s)", n.GatewayMode, n.gatewayModeWhy)
			}
		}},
		{name: "explicit mode wins under kubernetes", conf: `{"name":"n","gatewayMode":"nat"}`, envArgs: "K8S_POD_NAMESPACE=default;K8S_POD_NAME=p", check: func(t *testing.T, n *NetConf) {
			if n.GatewayMode != GatewayModeNAT || n.gatewayModeWhy != ModeWhyConfig {
				t.Errorf("explicit nat under Kubernetes gave %q (%s)", n.GatewayMode, n.gatewayModeWhy)
			}
		}},
		{name: "non-masquerade CIDRs", conf: `{"name":"n","ipMasq":true,"nonMasqueradeCIDRs":["10.244.0.0/16","fd00:244::/56"]}`, check: func(t *testing.T, n *NetConf) {
			if len(n.nonMasq) != 2 || n.nonMasq[0].String() != "10.244.0.0/16" || n.nonMasq[1].String() != "fd00:244::/56" {
				t.Errorf("nonMasq %v", n.nonMasq)
			}
		}},
		{name: "non-masquerade CIDR not a CIDR", conf: `{"name":"n","nonMasqueradeCIDRs":["10.244.0.0"]}`, code: 7, msg: "is not a CIDR"},
		{name: "non-masquerade CIDRs overlapping", conf: `{"name":"n","nonMasqueradeCIDRs":["10.244.0.0/16","10.244.1.0/24"]}`, code: 7, msg: "overlap"},
		{name: "trusted interface wildcard", conf: `{"name":"n","trustedHostInterfaces":["wg+"]}`, code: 7, msg: "prefix wildcard to iptables"},
		{name: "unknown gateway mode", conf: `{"name":"n","gatewayMode":"bogus"}`, code: 7, msg: `gatewayMode "bogus" is not supported`},
		{name: "unknown backend without ipMasq", conf: `{"name":"n","ipMasqBackend":"pf","ipam":{"type":"host-local"}}`, code: 7, msg: "unknown netfilter backend"},
		{name: "default gateway implies gateway", conf: `{"name":"n","isDefaultGateway":true}`, check: func(t *testing.T, n *NetConf) {
			if !n.IsGW {
				t.Error("isDefaultGateway did not set isGateway")
			}
		}},
		{name: "mac precedence", conf: `{"name":"n","runtimeConfig":{"mac":"02:00:00:00:00:01"},"args":{"cni":{"mac":"02:00:00:00:00:02"}}}`, envArgs: "MAC=02:00:00:00:00:03", check: func(t *testing.T, n *NetConf) {
			if n.mac != "02:00:00:00:00:03" {
				t.Errorf("mac %s", n.mac)
			}
		}},
		{name: "routed: no masquerade, still the gateway", conf: `{"name":"n","gatewayMode":"routed","isDefaultGateway":true,"ipMasq":true}`, check: func(t *testing.T, n *NetConf) {
			if n.IPMasq || !n.IsGW || !n.IsDefaultGW || !n.protects() {
				t.Errorf("routed: ipMasq %v isGateway %v isDefaultGateway %v protects %v", n.IPMasq, n.IsGW, n.IsDefaultGW, n.protects())
			}
		}},
		{name: "not json", conf: `{"name":`, code: 6},
		{name: "bad prevResult", conf: `{"name":"n","cniVersion":"1.0.0","prevResult":{"ips":"x"}}`, code: 6},
		{name: "long bridge name", conf: `{"name":"n","bridge":"abcdefghijklmnop"}`, code: 7, msg: "not a valid interface name"},
		{name: "bad mtu", conf: `{"name":"n","mtu":-1}`, code: 7, msg: "mtu"},
		{name: "bad mac", conf: `{"name":"n","runtimeConfig":{"mac":"zz"}}`, code: 7, msg: "MAC"},
		{name: "vlan not yet", conf: `{"name":"n","vlan":10}`, code: 7, msg: "not supported yet"},
		{name: "macspoofchk not yet", conf: `{"name":"n","macspoofchk":true}`, code: 7, msg: "not supported yet"},
		{name: "unknown masq backend", conf: `{"name":"n","ipMasq":true,"ipMasqBackend":"pf"}`, code: 7, msg: "unknown netfilter backend"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n, err := LoadConfig([]byte(c.conf), c.envArgs)
			if c.code == 0 {
				if err != nil {
					t.Fatal(err)
				}
				c.check(t, n)
				return
			}
			e, ok := err.(*types.Error)
			if !ok || e.Code != c.code || !strings.Contains(e.Msg, c.msg) {
				t.Fatalf("got %v, want code %d containing %q", err, c.code, c.msg)
			}
		})
	}
}

// The key pairs the reference's ADD refuses, each alone accepted.
func TestRefusedPairs(t *testing.T) {
	ipam := `"ipam":{"type":"host-local"}`
	cases := []struct {
		name, keys string
		msg        string // "" when ADD accepts it
	}{
		{"hairpinMode alone", `"hairpinMode":true`, ""},
		{"promiscMode alone", `"promiscMode":true`, ""},
		{"hairpinMode and promiscMode", `"hairpinMode":true,"promiscMode":true`, "hairpinMode and promiscMode exclude each other"},
		{"disableContainerInterface alone", `"disableContainerInterface":true`, ""},
		{"ipam alone", ipam, ""},
		{"ipam and disableContainerInterface", ipam + `,"disableContainerInterface":true`, "cannot have an ipam section"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n, err := LoadConfig([]byte(`{"name":"n",`+c.keys+`}`), "")
			if err != nil {
				t.Fatalf("LoadConfig (DEL and CHECK must accept it): %v", err)
			}
			err = n.validateForAdd()
			if c.msg == "" {
				if err != nil {
					t.Fatalf("ADD refused: %v", err)
				}
				return
			}
			e, ok := err.(*types.Error)
			if !ok || e.Code != 7 || !strings.Contains(e.Msg, c.msg) {
				t.Fatalf("got %v, want error 7 containing %q", err, c.msg)
			}
		})
	}
}
