package bridgeplugin

import (
	"os"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// FuzzLoadConfig: whatever a runtime sends as config and CNI_ARGS, parsing
// returns a config or a CNI error with a spec code, and never panics.
func FuzzLoadConfig(f *testing.F) {
	if raw, err := os.ReadFile("../../../../conf/10-docker0.conflist"); err == nil {
		f.Add(raw, "")
	}
	f.Add([]byte(`{"cniVersion":"1.1.0","name":"n","type":"bridge","bridge":"br0","isGateway":true,"ipMasq":true,"gatewayMode":"nat-unprotected","icc":false,"ipam":{"type":"host-local"}}`), "IgnoreUnknown=1;MAC=02:00:00:00:00:01")
	// What flannel's delegation sends a pod's bridge, and the cluster conflist's masquerade exceptions.
	f.Add([]byte(`{"cniVersion":"0.3.1","name":"cbr0","type":"bridge","hairpinMode":true,"isDefaultGateway":true,"ipMasq":false,"mtu":1450,"isGateway":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.1.0/24"}]],"routes":[{"dst":"10.244.0.0/16"}]}}`),
		"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=3f2a;K8S_POD_UID=u")
	f.Add([]byte(`{"name":"n","ipMasq":true,"nonMasqueradeCIDRs":["10.244.0.0/16","fd00::/64"]}`), "K8S_POD_NAMESPACE=")
	f.Add([]byte(`{"name":"n","prevResult":{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]},"runtimeConfig":{"mac":"zz"}}`), "MAC=")
	f.Fuzz(func(t *testing.T, stdin []byte, envArgs string) {
		n, err := LoadConfig(stdin, envArgs)
		if err != nil {
			e, ok := err.(*types.Error)
			if !ok || e.Code == 0 || e.Msg == "" {
				t.Fatalf("error without a CNI code: %#v", err)
			}
			return
		}
		if n.BrName == "" || n.GatewayMode == "" || n.gatewayModeWhy == "" || n.ICC == nil || n.IsolateNetworks == nil {
			t.Fatalf("accepted config without its defaults: %+v", n)
		}
		_ = n.validateForAdd()
	})
}
