package portmapplugin

import (
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

// A hostIP of a family the container has no address in publishes nothing
// anywhere: ADD refuses it (error 7) before touching the host.
func TestHostIPOfAbsentFamily(t *testing.T) {
	conf := `{"cniVersion": "1.0.0", "name": "n", "type": "portmap", "stateDir": "` + t.TempDir() + `",
	  "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "::"}]},
	  "prevResult": {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/x"}],
	    "ips": [{"address": "10.1.0.2/24", "interface": 0}]}}`
	err := Add(&skel.CmdArgs{ContainerID: "c", IfName: "eth0", Netns: "/x", StdinData: []byte(conf)})
	e, ok := err.(*types.Error)
	if !ok || e.Code != types.ErrInvalidNetworkConfig || !strings.Contains(e.Msg, "hostIP :: of [::]:8080/tcp -> 80 is an IPv6 address") {
		t.Fatalf("ADD: %v, want error 7 naming the mapping and its family", err)
	}
}
