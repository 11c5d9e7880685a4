package ipt

import (
	"strings"
)

// ruleTxn collects the changes of one ADD or DEL for one table; it is
// applied by a single `iptables-restore --noflush`, which the kernel commits
// atomically: either every line lands or none does.
type ruleTxn struct {
	table   string
	declare []string // chains to create, or to flush when they exist
	lines   []string
	// others are sections for other tables, applied in the same
	// iptables-restore (the fast path's checks of a base that spans
	// tables).
	others []*ruleTxn
}

// in returns the section of txn's restore for table.
func (t *ruleTxn) in(table string) *ruleTxn {
	if table == t.table {
		return t
	}
	for _, o := range t.others {
		if o.table == table {
			return o
		}
	}
	o := &ruleTxn{table: table}
	t.others = append(t.others, o)
	return o
}

// declareChain creates chain, or empties it if it exists.
func (t *ruleTxn) declareChain(chain string) { t.declare = append(t.declare, chain) }

// add appends a rule; args are tokens as given to iptables.
func (t *ruleTxn) add(chain string, args ...string) {
	t.lines = append(t.lines, "-A "+chain+" "+joinArgs(args))
}

// addAll appends rules to chain.
func (t *ruleTxn) addAll(chain string, rules [][]string) {
	for _, r := range rules {
		t.add(chain, r...)
	}
}

// insert puts a rule at the top of chain.
func (t *ruleTxn) insert(chain string, args ...string) {
	t.lines = append(t.lines, "-I "+chain+" 1 "+joinArgs(args))
}

// deleteSaved removes a rule given as printed by iptables-save.
func (t *ruleTxn) deleteSaved(chain, saved string) {
	t.lines = append(t.lines, "-D "+chain+" "+saved)
}

// del removes the rule given by args exactly as add wrote it; the whole
// transaction fails if there is no such rule.
func (t *ruleTxn) del(chain string, args ...string) {
	t.lines = append(t.lines, "-D "+chain+" "+joinArgs(args))
}

// check makes the whole transaction fail unless chain has this rule.
func (t *ruleTxn) check(chain string, args ...string) {
	t.lines = append(t.lines, "-C "+chain+" "+joinArgs(args))
}

// newChain creates chain and makes the transaction fail if it exists.
func (t *ruleTxn) newChain(chain string) { t.lines = append(t.lines, "-N "+chain) }

// flushChain empties chain.
func (t *ruleTxn) flushChain(chain string) { t.lines = append(t.lines, "-F "+chain) }

// deleteChain removes an (already emptied or declared) chain.
func (t *ruleTxn) deleteChain(chain string) { t.lines = append(t.lines, "-X "+chain) }

func (t *ruleTxn) empty() bool {
	for _, o := range t.others {
		if !o.empty() {
			return false
		}
	}
	return len(t.declare) == 0 && len(t.lines) == 0
}

// render returns iptables-restore input, with the other tables' sections.
func (t *ruleTxn) render() string {
	var b strings.Builder
	for _, o := range t.others {
		if !o.empty() {
			b.WriteString(o.render())
		}
	}
	if len(t.declare) == 0 && len(t.lines) == 0 {
		return b.String()
	}
	b.WriteString("*" + t.table + "\n")
	for _, c := range t.declare {
		b.WriteString(":" + c + " - [0:0]\n")
	}
	for _, l := range t.lines {
		b.WriteString(l + "\n")
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// joinArgs quotes tokens the way iptables-restore reads them.
func joinArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'") {
			out[i] = `"` + strings.ReplaceAll(a, `"`, `\"`) + `"`
		} else {
			out[i] = a
		}
	}
	return strings.Join(out, " ")
}
