package portmapplugin

import (
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// FuzzLoadConfig: whatever a runtime sends (config, runtimeConfig,
// prevResult), parsing returns mappings that pass the checks every
// backend relies on, or a CNI error with a spec code; it never panics.
func FuzzLoadConfig(f *testing.F) {
	f.Add([]byte(`{"cniVersion":"1.1.0","name":"docker0","type":"portmap","snat":true,"checkHostListeners":true,"runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":5000,"protocol":"tcp"},{"hostPort":9090,"containerPort":5000,"protocol":"udp","hostIP":"127.0.0.1"}]},"prevResult":{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","sandbox":"/x"}],"ips":[{"address":"172.17.0.2/16","interface":0}]}}`))
	// containerd's CRI: capitalised keys and an empty HostIP.
	f.Add([]byte(`{"cniVersion":"0.4.0","name":"k8s","type":"portmap","runtimeConfig":{"portMappings":[{"HostPort":80,"ContainerPort":8080,"Protocol":"TCP","HostIP":""}]}}`))
	f.Add([]byte(`{"name":"n","markMasqBit":13,"externalSetMarkChain":"KUBE-MARK-MASQ","conditionsV4":["-s","10.0.0.0/8"]}`))
	f.Fuzz(func(t *testing.T, stdin []byte) {
		c, err := LoadConfig(stdin)
		if err != nil {
			e, ok := err.(*types.Error)
			if !ok || e.Code == 0 || e.Msg == "" {
				t.Fatalf("error without a CNI code: %#v", err)
			}
			return
		}
		for _, m := range c.mappings {
			if m.HostPort < 1 || m.HostPort > 65535 || m.ContainerPort < 1 || m.ContainerPort > 65535 {
				t.Fatalf("accepted a port out of range: %v", m)
			}
			switch m.Protocol {
			case "tcp", "udp", "sctp":
			default:
				t.Fatalf("accepted protocol %q", m.Protocol)
			}
		}
	})
}
