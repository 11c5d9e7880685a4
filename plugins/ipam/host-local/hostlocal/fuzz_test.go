package hostlocal

import (
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// FuzzLoadConfig: ranges, routes, requested addresses from runtimeConfig,
// args and CNI_ARGS; a config or a CNI error with a spec code, never a panic.
func FuzzLoadConfig(f *testing.F) {
	f.Add([]byte(`{"cniVersion":"1.1.0","name":"docker0","ipam":{"type":"host-local","ranges":[[{"subnet":"172.17.0.0/16","gateway":"172.17.0.1"}]]}}`), "")
	f.Add([]byte(`{"name":"n","ipam":{"type":"host-local","ranges":[[{"subnet":"10.3.0.0/24"}],[{"subnet":"fd03::/64"}]],"routes":[{"dst":"0.0.0.0/0"}]},"runtimeConfig":{"ips":["10.3.0.50/24"]},"args":{"cni":{"ips":["fd03::51"]}}}`), "IgnoreUnknown=1;IP=10.3.0.52,fd03::52")
	f.Add([]byte(`{"name":"n","ipam":{"subnet":"10.0.0.0/30","rangeStart":"10.0.0.3","rangeEnd":"10.0.0.1"}}`), "IP=")
	f.Fuzz(func(t *testing.T, stdin []byte, envArgs string) {
		c, _, err := LoadConfig(stdin, envArgs)
		if err != nil {
			e, ok := err.(*types.Error)
			if !ok || e.Code == 0 || e.Msg == "" {
				t.Fatalf("error without a CNI code: %#v", err)
			}
			return
		}
		if len(c.Ranges) == 0 {
			t.Fatal("accepted a config without a range")
		}
	})
}

// FuzzReservationContent: what a reservation file may hold, garbage
// included, never makes it belong to an attachment it does not name.
func FuzzReservationContent(f *testing.F) {
	f.Add("c1\r\neth0", "c1", "eth0")
	f.Add("c1", "c1", "eth0") // written by old reference versions: no ifname
	f.Add("c1\r\neth1", "c1", "eth0")
	f.Add("\x00\xff\r\n\r\n", "", "")
	f.Fuzz(func(t *testing.T, content, id, ifname string) {
		trimmed := strings.TrimSpace(content)
		if owns(content, id, ifname) && trimmed != id && trimmed != id+lineBreak+ifname {
			t.Fatalf("content %q taken as %q/%q's", content, id, ifname)
		}
	})
}
