package nft

import (
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/google/nftables"
)

// Print writes the part's operations as data, applying nothing: for each,
// the elements it adds or deletes in which set of which table (keys and
// data as the kernel gets them, in hex, with their comment), the source
// lists it needs, and what runs once it has landed.
func (p *part) Print(w io.Writer) error {
	for _, o := range p.ops {
		table := fmt.Sprintf("%s %s", o.f.NFTName(), Table)
		fmt.Fprintf(w, "nftables %s: %s\n", table, o.what)
		if len(o.add) > 0 {
			fmt.Fprintf(w, "  (the table, its base chains and sets, where missing)\n")
		}
		for _, l := range o.lists {
			fmt.Fprintf(w, "  source list %s: %d networks\n", l.name, len(l.nets))
		}
		for _, e := range o.add {
			fmt.Fprintf(w, "  add element %s %s %s\n", table, e.set.Name, elemText(e.e))
		}
		for _, e := range o.del {
			fmt.Fprintf(w, "  delete element %s %s %s (added first, so absent is no error)\n", table, e.set.Name, elemText(e.e))
		}
		if len(o.del) == 0 && o.deletes() {
			var names []string
			for _, s := range o.sets {
				names = append(names, s.Name)
			}
			fmt.Fprintf(w, "  delete every element of %s in %s (found by comment)\n", o.owner.Tag(), strings.Join(names, ", "))
		}
		if o.after != nil {
			fmt.Fprintf(w, "  then: %s\n", afterText(o))
		}
	}
	return nil
}

func elemText(e nftables.SetElement) string {
	s := "{ " + hex.EncodeToString(e.Key)
	if len(e.KeyEnd) > 0 {
		s += "-" + hex.EncodeToString(e.KeyEnd)
	}
	if len(e.Val) > 0 {
		s += " : " + hex.EncodeToString(e.Val)
	}
	if e.VerdictData != nil {
		s += " : " + e.VerdictData.Chain
	}
	if e.Comment != "" {
		s += fmt.Sprintf(" comment %q", e.Comment)
	}
	return s + " }"
}

func afterText(o op) string {
	if o.afterKey != "" {
		return o.afterKey + " (the accepts in the iptables filter tables)"
	}
	return "what depends on the batch (accepts elsewhere, unused source lists)"
}
