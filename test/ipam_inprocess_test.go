package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestIPAMInProcess: our bridge runs our host-local's code in process when
// CNI_PATH finds it beside the bridge binary, so no host-local process
// starts (the plugins' timeline lines say which processes ran); with
// DNET_IPAM_EXEC=1 it is started as a plugin, as any other IPAM is. Both
// give the container its address and release it at DEL.
func TestIPAMInProcess(t *testing.T) {
	for _, exec := range []bool{false, true} {
		name := map[bool]string{false: "in-process", true: "DNET_IPAM_EXEC=1"}[exec]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, "nftables")
			lines := filepath.Join(w.dir, "timeline.jsonl")
			w.env = append(w.env, "DNET_TIMELINE="+lines)
			if exec {
				w.env = append(w.env, "DNET_IPAM_EXEC=1")
			}
			c := w.newContainer("c1")
			d := w.libcni("")
			if _, err := d.add(c, both(8300, "")); err != nil {
				t.Fatal(err)
			}
			ip := containerIP(t, c)
			w.waitServing(c, ip)
			w.mustReach(w.client, "tcp", hostAddr, 8300)
			data, _ := os.ReadFile(lines)
			started := strings.Contains(string(data), `"plugin":"host-local"`)
			if started != exec {
				t.Errorf("a host-local process ran: %v, want %v:\n%s", started, exec, data)
			}
			if err := d.del(c, both(8300, "")); err != nil {
				t.Fatal(err)
			}
			w.assertGone(c, ip, nil)
		})
	}
}
