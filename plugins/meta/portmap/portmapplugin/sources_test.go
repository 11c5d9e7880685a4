package portmapplugin

import (
	"fmt"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// allowedSources and sourceRanges: CIDRs or addresses, a mapping's own
// list in place of the network's, networks inside another dropped, and
// error 7 naming the bad entry.
func TestSourceAllowlistConfig(t *testing.T) {
	conf := func(allowed, ranges string) []byte {
		return []byte(`{"cniVersion": "1.0.0", "name": "n", "type": "portmap", "allowedSources": ` + allowed + `,
		  "runtimeConfig": {"portMappings": [
		    {"hostPort": 80, "containerPort": 80, "protocol": "tcp"},
		    {"hostPort": 81, "containerPort": 81, "protocol": "tcp", "sourceRanges": ` + ranges + `}]}}`)
	}
	c, err := LoadConfig(conf(`["10.0.0.0/8", "10.1.0.0/16", "192.0.2.7", "2001:db8::/32"]`, `["198.51.100.0/24"]`))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(c.mappings[0].Sources); got != "[10.0.0.0/8 192.0.2.7/32 2001:db8::/32]" {
		t.Errorf("the network's list: %s", got)
	}
	if got := fmt.Sprint(c.mappings[1].Sources); got != "[198.51.100.0/24]" {
		t.Errorf("the mapping's own list: %s", got)
	}
	for _, bad := range []struct{ allowed, ranges, want string }{
		{`["10.0.0.0/33"]`, `[]`, `allowedSources: [0] "10.0.0.0/33" is not a CIDR`},
		{`[]`, `["nope"]`, `portMappings[1]: sourceRanges: [0] "nope" is not a CIDR`},
	} {
		_, err := LoadConfig(conf(bad.allowed, bad.ranges))
		e, ok := err.(*types.Error)
		if !ok || e.Code != types.ErrInvalidNetworkConfig || !strings.Contains(e.Msg, bad.want) {
			t.Errorf("%s / %s: %v, want error 7 with %q", bad.allowed, bad.ranges, err, bad.want)
		}
	}
}
