package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestMasqueradePerNetwork: with the iptables backend, bridge's ipMasq is
// one rule per network and subnet, as Docker's: the second container's
// ADD writes no nat rule; a flushed DNET-MASQ (someone's partial flush)
// is back with the next ADD, with the masquerade of the containers already
// there; changed exceptions replace the subnet's rules; the rules go with
// the network's last container only.
func TestMasqueradePerNetwork(t *testing.T) {
	for _, flavour := range []string{"nft", "legacy"} {
		t.Run(flavour, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, "iptables")
			w.useFlavour(flavour)
			d := w.libcni("")
			w.client.Start(filepath.Join(w.bin, "hello"), "serve", "-port", fmt.Sprint(clientServer))
			masq := func() []string {
				var out []string
				for _, l := range strings.Split(w.host.MustRun(w.iptables+"-save", "-t", "nat"), "\n") {
					if strings.HasPrefix(l, "-A DNET-MASQ ") {
						out = append(out, l)
					}
				}
				return out
			}
			const want = "-A DNET-MASQ -s 172.17.0.0/16 ! -d 224.0.0.0/4 ! -o docker0 -m comment --comment \"dnet:fwd br=docker0 masq 172.17.0.0/16\" -j MASQUERADE"
			outbound := func(c *container, step string) {
				t.Helper()
				if peer := w.mustReach(c.ns, "tcp", clientAddr, clientServer); peer != hostAddr {
					t.Errorf("%s: client saw %s, want the host's address %s (masquerade)", step, peer, hostAddr)
				}
			}

			c1, c2, c3 := w.newContainer("c1"), w.newContainer("c2"), w.newContainer("c3")
			for _, c := range []*container{c1, c2} {
				if _, err := d.add(c, nil); err != nil {
					t.Fatalf("ADD %s: %v", c.id, err)
				}
			}
			if got := masq(); len(got) != 1 || got[0] != want {
				t.Fatalf("after two ADDs DNET-MASQ holds:\n%s\nwant the network's one rule:\n%s", strings.Join(got, "\n"), want)
			}
			outbound(c1, "c1")
			outbound(c2, "c2")

			// Control: without the rule, the client (no route to the
			// containers) cannot answer.
			w.host.MustRun(w.iptables, "-t", "nat", "-F", "DNET-MASQ")
			w.host.MustRun("conntrack", "-F")
			w.mustNotReach(c1.ns, "tcp", clientAddr, clientServer)
			if _, err := d.add(c3, nil); err != nil {
				t.Fatalf("ADD c3: %v", err)
			}
			w.host.MustRun("conntrack", "-F")
			if got := masq(); len(got) != 1 || got[0] != want {
				t.Fatalf("the ADD after a flush left DNET-MASQ with:\n%s", strings.Join(got, "\n"))
			}
			outbound(c1, "c1 after the flush and c3's ADD")

			// The network's exceptions change (nonMasqueradeCIDRs): the
			// next ADD replaces the subnet's rules, leaving none of the old.
			except := w.libcniFor(w.network(network{bridgeKeys: map[string]any{"nonMasqueradeCIDRs": []string{"10.99.0.0/16"}}}))
			c4 := w.newContainer("c4")
			if _, err := except.add(c4, nil); err != nil {
				t.Fatalf("ADD c4: %v", err)
			}
			got := masq()
			if len(got) != 2 || !strings.Contains(got[0], "-d 10.99.0.0/16") || !strings.Contains(got[0], "-j RETURN") || !strings.Contains(got[1], "except=") || !strings.Contains(got[1], "-j MASQUERADE") {
				t.Fatalf("after an ADD with other exceptions DNET-MASQ holds:\n%s\nwant its RETURN and MASQUERADE only", strings.Join(got, "\n"))
			}
			outbound(c1, "c1 after the exceptions changed")

			for _, c := range []*container{c1, c2, c3} {
				if err := d.del(c, nil); err != nil {
					t.Fatalf("DEL %s: %v", c.id, err)
				}
			}
			if got := masq(); len(got) != 2 {
				t.Fatalf("the network's rules went before its last container:\n%s", strings.Join(got, "\n"))
			}
			outbound(c4, "c4, the last")
			if err := except.del(c4, nil); err != nil {
				t.Fatalf("DEL c4: %v", err)
			}
			if got := masq(); len(got) != 0 {
				t.Errorf("after the last DEL DNET-MASQ still holds:\n%s", strings.Join(got, "\n"))
			}
		})
	}
}
