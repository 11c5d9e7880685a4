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

// TestGC: CNI 1.1 GC of a network removes everything of the attachments
// it is not told are valid (reservation, records, claims, rules or
// elements, host veth) and nothing else: not the valid one's, not another
// network's. libcni's cache is wiped first, as after a runtime lost its
// state, so that only the plugins' GC can find the leftovers.
func TestGC(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, backend)
			d := w.libcni(gcVersion)
			other := w.libcniFor(w.network(network{name: "other", bridge: "dnetother", subnet: "172.23.0.0/16"}))
			keep, stale, quiet, elsewhere := w.newContainer("keep"), w.newContainer("stale"), w.newContainer("quiet"), w.newContainer("elsewhere")
			for _, c := range []struct {
				c  *container
				ms []mapping
				d  *libcniDriver
			}{{keep, both(8300, ""), d}, {stale, both(8301, ""), d}, {quiet, nil, d}, {elsewhere, both(8302, ""), other}} {
				if _, err := c.d.add(c.c, c.ms); err != nil {
					t.Fatalf("ADD %s: %v", c.c.ns.Name, err)
				}
			}
			ipKeep, ipStale, ipQuiet := containerIP(t, keep), containerIP(t, stale), containerIP(t, quiet)
			w.waitServing(keep, ipKeep)
			if err := os.RemoveAll(filepath.Join(w.dir, "cache")); err != nil {
				t.Fatal(err)
			}
			valid := &libcni.GCArgs{ValidAttachments: []types.GCAttachment{{ContainerID: keep.id, IfName: "eth0"}}}
			if err := d.cni.GCNetworkList(context.Background(), d.list, valid); err != nil {
				t.Fatalf("GC: %v", err)
			}
			w.assertGone(stale, ipStale, []int{8301})
			w.assertGone(quiet, ipQuiet, nil)
			for _, c := range []*container{stale, quiet} {
				if owners, _ := filepath.Glob(filepath.Join(w.stateDir(), "hostports", "owners", c.owner().Tag()+".json")); len(owners) > 0 {
					t.Errorf("claims of %s remain after GC", c.ns.Name)
				}
			}
			// The valid attachment and the other network's are intact.
			w.mustReach(w.client, "tcp", hostAddr, 8300)
			w.mustReach(w.client, "tcp", hostAddr, 8302)
			if recs, _ := filepath.Glob(filepath.Join(w.stateDir(), "*", keep.owner().Tag()+".json")); len(recs) != 4 {
				t.Errorf("records of the valid attachment after GC: %v, want link, masq, forward and portmap", recs)
			}
			// The stale attachment's port is free again.
			again := w.newContainer("again")
			w.addTo(w.conflist(gcVersion), again, both(8301, ""))
			w.mustReach(w.client, "tcp", hostAddr, 8301)
		})
	}
}

// TestAfterFlush: after the firewall is flushed behind the plugins' back
// (nft flush ruleset, which takes iptables-nft's tables too), CHECK says
// what is missing and DEL still succeeds and leaves nothing.
func TestAfterFlush(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, backend)
			d := w.libcni(gcVersion)
			c := w.newContainer("c")
			if _, err := d.add(c, both(8400, "")); err != nil {
				t.Fatal(err)
			}
			ip := containerIP(t, c)
			w.host.MustRun("nft", "flush", "ruleset")
			err := d.check(c, both(8400, ""))
			if err == nil || !strings.Contains(err.Error(), "missing") {
				t.Errorf("CHECK after a flush: %v, want it to name what is missing", err)
			}
			if err := d.del(c, both(8400, "")); err != nil {
				t.Fatalf("DEL after a flush: %v", err)
			}
			w.assertGone(c, ip, []int{8400})
		})
	}
}
