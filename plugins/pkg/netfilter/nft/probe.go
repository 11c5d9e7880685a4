package nft

import (
	"fmt"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// ProbeSpecs checks that every element of specs is in its set, each set
// dumped once, and that every source list they jump to is whole: what a
// flush of one set (nft flush set ip dnet guard_protect) removes while
// the base stays.
func (b *Backend) ProbeSpecs(ports []netfilter.PortMapSpec, masq []netfilter.MasqSpec, fwd []netfilter.ForwardSpec) error {
	l := newLayout(b.family)
	var want []elem
	lists := map[string]srcList{}
	for _, s := range ports {
		want = append(want, append(l.portElems(s), l.hairpinElems(s)...)...)
		_, ls := l.sourceElems(s)
		for _, list := range ls {
			lists[list.name] = list
		}
	}
	for _, s := range masq {
		want = append(want, l.masqElems(s)...)
	}
	for _, s := range fwd {
		want = append(want, l.forwardElems(s)...)
	}
	if len(want) == 0 {
		return nil
	}
	c, done, err := b.dial()
	if err != nil {
		return err
	}
	have := map[string]map[string]bool{}
	for _, w := range want {
		if have[w.set.Name] != nil {
			continue
		}
		elems, err := c.GetSetElements(w.set)
		if err != nil {
			done(nil)
			return fmt.Errorf("%s nftables: set %s is gone", b.family, w.set.Name)
		}
		keys := map[string]bool{}
		for _, e := range elems {
			keys[string(e.Key)] = true
		}
		have[w.set.Name] = keys
	}
	done(nil)
	missing := 0
	var first elem
	for _, w := range want {
		if !have[w.set.Name][string(w.e.Key)] {
			if missing == 0 {
				first = w
			}
			missing++
		}
	}
	if missing > 0 {
		return fmt.Errorf("%s nftables: %d elements are missing from their sets (the first from %s, for %s)", b.family, missing, first.set.Name, first.e.Comment)
	}
	var all []srcList
	for _, list := range lists {
		all = append(all, list)
	}
	return b.checkLists(l, all)
}
