package ipt

import (
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"

	"bufio"
	"strings"
)

// Snapshot is one `iptables-save -t <table>`: the chains and, per chain, the
// rule lines exactly as printed (without the leading "-A CHAIN "). Lines as
// printed by iptables-save are valid input for iptables-restore, which is
// how owned rules are deleted without re-deriving their exact spelling.
// From `iptables-save -c` it also keeps each rule's "[packets:bytes]".
type Snapshot struct {
	chains   map[string]bool
	rules    map[string][]string
	counters map[string]string // chain + "\x00" + rule
}

func parseSnapshot(out, table string) *Snapshot {
	s := &Snapshot{chains: map[string]bool{}, rules: map[string][]string{}}
	inTable := false
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "*"+table:
			inTable = true
		case line == "COMMIT":
			inTable = false
		case !inTable:
		case strings.HasPrefix(line, ":"):
			if name, _, ok := strings.Cut(line[1:], " "); ok {
				s.chains[name] = true
			}
		case strings.HasPrefix(line, "-A "):
			chain, rest, _ := strings.Cut(line[3:], " ")
			s.rules[chain] = append(s.rules[chain], rest)
		case strings.HasPrefix(line, "[") && strings.Contains(line, "] -A "):
			counter, rule, _ := strings.Cut(line, " -A ")
			chain, rest, _ := strings.Cut(rule, " ")
			s.rules[chain] = append(s.rules[chain], rest)
			if s.counters == nil {
				s.counters = map[string]string{}
			}
			s.counters[chain+"\x00"+rest] = counter
		}
	}
	return s
}

// hasRule reports whether chain has a rule containing every fragment.
func (s *Snapshot) hasRule(chain string, fragments ...string) bool {
	return len(s.Matching(chain, fragments...)) > 0
}

// matching returns the rules of chain that contain every fragment.
func (s *Snapshot) Matching(chain string, fragments ...string) []string {
	var out []string
next:
	for _, r := range s.rules[chain] {
		for _, f := range fragments {
			if !strings.Contains(r+" ", f) {
				continue next
			}
		}
		out = append(out, r)
	}
	return out
}

// counted renders rules of chain as `iptables-save -c` printed them.
func (s *Snapshot) Counted(chain string, rules []string) []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = strings.TrimSpace(s.counters[chain+"\x00"+r] + " -A " + chain + " " + r)
	}
	return out
}

// owned returns the rules of chain carrying owner's tag.
func (s *Snapshot) Owned(chain string, o netfilter.Owner) []string {
	return s.Matching(chain, o.Marker())
}

// Lines returns every rule of the table, as iptables-save printed it
// (without "-A CHAIN").
func (s *Snapshot) Lines() []string {
	var out []string
	for _, rules := range s.rules {
		out = append(out, rules...)
	}
	return out
}
