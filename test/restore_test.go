package e2e

import (
	"regexp"
	"strings"
	"testing"
)

// ourRule is one rule of ours, and how to delete it.
type ourRule struct {
	name string   // for messages: where it is and what it says
	del  []string // the command that deletes it
}

// ourRules lists every rule we installed in the host netns: each rule of
// the nftables dnet tables, and each iptables rule of a DNET- chain or
// carrying our comment, in every table and both families.
func (w *world) ourRules() []ourRule {
	var out []ourRule
	handle := regexp.MustCompile(`^\s*(.*\S) # handle (\d+)$`)
	for _, family := range []string{"ip", "ip6"} {
		listing, err := w.host.Run("nft", "-a", "list", "table", family, "dnet")
		if err != nil {
			continue
		}
		chain := ""
		for _, l := range strings.Split(listing, "\n") {
			if m := regexp.MustCompile(`^\s*chain (\S+) \{`).FindStringSubmatch(l); m != nil {
				chain = m[1]
				continue
			}
			if strings.HasPrefix(strings.TrimSpace(l), "}") {
				chain = ""
				continue
			}
			if m := handle.FindStringSubmatch(l); m != nil && chain != "" && !strings.HasPrefix(m[1], "type ") {
				out = append(out, ourRule{family + " dnet " + chain + ": " + m[1],
					[]string{"nft", "delete", "rule", family, "dnet", chain, "handle", m[2]}})
			}
		}
	}
	for _, ipt := range []string{w.iptables, strings.Replace(w.iptables, "iptables", "ip6tables", 1)} {
		saved, err := w.host.Run(ipt + "-save") // every table at once
		if err != nil {
			continue
		}
		table := ""
		for _, l := range strings.Split(saved, "\n") {
			if strings.HasPrefix(l, "*") {
				table = l[1:]
			}
			if !strings.HasPrefix(l, "-A ") || !(strings.HasPrefix(l, "-A DNET-") || strings.Contains(l, "dnet:")) {
				continue
			}
			// iptables-save's line, -A turned into -D, is the deletion.
			args, ok := splitSaved(strings.TrimPrefix(l, "-A "))
			if !ok {
				w.t.Fatalf("cannot split %q", l)
			}
			out = append(out, ourRule{ipt + " " + table + ": " + l, append([]string{ipt, "-t", table, "-D"}, args...)})
		}
	}
	return out
}

// splitSaved splits an iptables-save rule into arguments, keeping quoted
// comments whole.
func splitSaved(s string) ([]string, bool) {
	var out []string
	var cur strings.Builder
	quoted, have := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, have = !quoted, true
		case r == ' ' && !quoted:
			if have {
				out = append(out, cur.String())
			}
			cur.Reset()
			have = false
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out, !quoted
}

// TestRestoreRepairsEveryRule: for every single rule of ours, in every
// table, chain and family, deleting it makes dnetctl check name what is
// missing, and dnetctl restore puts it back, after which check passes and
// the rules are exactly those of before. Both backends, a dual-stack
// network with every protection on, a source allowlist and a port bound
// to one address.
func TestRestoreRepairsEveryRule(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, backend)
			w.dualStack()
			conf := w.network(network{file: "dual-stack/10-docker0.conflist", bridgeKeys: map[string]any{"icc": false}})
			c1 := w.newContainer("c1")
			ms := append(both(portAll, ""), withSources(both(portShared, hostAddr2), clientAddr, clientAddr6)...)
			w.addTo(conf, c1, ms)
			if out, err := w.dnetctl("check"); err != nil {
				t.Fatalf("check right after ADD: %v\n%s", err, out)
			}
			rules, before := w.ourRules(), w.ours()
			if len(rules) < 20 {
				t.Fatalf("only %d rules of ours found", len(rules))
			}
			for _, r := range rules {
				// nftables handles change as restore adds rules again:
				// find the rule anew (iptables deletes by the rule itself).
				now := &r
				if r.del[0] == "nft" {
					now = nil
					for _, n := range w.ourRules() {
						if n.name == r.name {
							now = &n
							break
						}
					}
				}
				if now == nil {
					t.Fatalf("rule gone before its turn: %s", r.name)
				}
				w.host.MustRun(now.del...)
				if out, err := w.dnetctl("check"); err == nil {
					t.Errorf("check passes without %s:\n%s", r.name, out)
				}
				if out, err := w.dnetctl("restore"); err != nil {
					t.Errorf("restore after deleting %s: %v\n%s", r.name, err, out)
				}
				if out, err := w.dnetctl("check"); err != nil {
					t.Errorf("check after restoring %s: %v\n%s", r.name, err, out)
				}
				if got := w.ours(); got != before {
					t.Fatalf("after restoring %s the rules differ:\n--- got\n%s\n--- want\n%s", r.name, got, before)
				}
			}
			t.Logf("%d rules deleted and restored one at a time", len(rules))

			// Shared elements too: the bridge's hairpin_ifs element, which
			// every container of the bridge relies on and no DEL removes.
			if backend == "nftables" {
				w.host.MustRun("nft", "flush", "set", "ip", "dnet", "hairpin_ifs")
				if out, err := w.dnetctl("check"); err == nil {
					t.Errorf("check passes without the hairpin interface:\n%s", out)
				}
				if out, err := w.dnetctl("restore"); err != nil {
					t.Errorf("restore after flushing hairpin_ifs: %v\n%s", err, out)
				}
				if out, err := w.dnetctl("check"); err != nil {
					t.Errorf("check after restoring hairpin_ifs: %v\n%s", err, out)
				}
				if err := w.libcniFor(conf).check(c1, ms); err != nil {
					t.Errorf("CHECK after restoring hairpin_ifs: %v", err)
				}
				w.mustReach(c1.ns, "tcp", hostAddr, portAll) // hairpin, masqueraded again
			}
		})
	}
}
