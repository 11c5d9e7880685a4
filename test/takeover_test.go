package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

// refBin is the reference plugins v1.10.0, installed by make tools.
func refBin(t *testing.T) string {
	var dir string
	for _, p := range []string{"bridge", "host-local", "portmap"} {
		dir = filepath.Dir(refPlugin(t, p))
	}
	return dir
}

// TestTakeOverFromReference: containers set up by the reference plugins
// (v1.10.0, each of its backends), then the binaries swapped for ours, as
// a DaemonSet upgrade does with pods running. Our DEL of one container
// removes the reference's DNAT and masquerade for it and its address,
// and nothing of the other container, which keeps answering; the freed
// host port then works for a container of ours; and a GC that is not told
// of the other reference container removes it too.
func TestTakeOverFromReference(t *testing.T) {
	ref := refBin(t)
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, backend)
			ours := w.cniPath
			w.cniPath = []string{ref}
			d := w.libcni(gcVersion)
			c1, c2 := w.newContainer("r1"), w.newContainer("r2")
			for i, c := range []*container{c1, c2} {
				if _, err := d.add(c, both(8700+i, "")); err != nil {
					t.Fatalf("reference ADD %s: %v", c.ns.Name, err)
				}
			}
			ip1, ip2 := containerIP(t, c1), containerIP(t, c2)
			w.waitServing(c1, ip1)
			w.mustReach(w.client, "tcp", hostAddr, 8700)
			before := w.natRules()
			if !strings.Contains(before, c1.id) {
				t.Fatalf("the reference's rules do not mention %s:\n%s", c1.id, before)
			}

			out, err := w.dnetctl("check")
			if err == nil || !strings.Contains(out, "foreign: the reference plugins' rules for container "+c1.id) || !strings.Contains(out, c2.id) {
				t.Errorf("dnetctl check with the reference's containers: %v\n%s", err, out)
			}

			w.cniPath = ours
			d = w.libcni(gcVersion)
			if err := d.del(c1, both(8700, "")); err != nil {
				t.Fatalf("our DEL of a reference container: %v", err)
			}
			after := w.natRules()
			if strings.Contains(after, c1.id) || strings.Contains(after, ip1+":") || strings.Contains(after, ip1+" ") {
				t.Errorf("after our DEL the reference's state for %s remains:\n%s", c1.id, after)
			}
			if !strings.Contains(after, c2.id) {
				t.Errorf("our DEL removed the other container's reference state:\n%s", after)
			}
			w.mustReach(w.client, "tcp", hostAddr, 8701)
			w.assertGone(c1, ip1, []int{8700})

			// The port is free for a container of ours.
			c3 := w.newContainer("o3")
			w.addTo(w.conflist(gcVersion), c3, both(8700, ""))
			if peer := w.mustReach(w.client, "tcp", hostAddr, 8700); peer != clientAddr {
				t.Errorf("the new container saw %s", peer)
			}

			// GC, with libcni's cache lost, finds the other reference
			// container by its rules' comments and removes it; ours stays.
			if err := os.RemoveAll(filepath.Join(w.dir, "cache")); err != nil {
				t.Fatal(err)
			}
			valid := &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: c3.id, IfName: "eth0"}}}
			if err := d.cni.GCNetworkList(context.Background(), d.list, valid); err != nil {
				t.Fatalf("GC: %v", err)
			}
			if rules := w.natRules(); strings.Contains(rules, c2.id) {
				t.Errorf("after GC the reference's state for %s remains:\n%s", c2.id, rules)
			}
			w.assertGone(c2, ip2, []int{8701})
			w.mustReach(w.client, "tcp", hostAddr, 8700)
			if out, err := w.dnetctl("check"); err != nil || strings.Contains(out, "foreign") {
				t.Errorf("dnetctl check after the takeover: %v\n%s", err, out)
			}
		})
	}
}
