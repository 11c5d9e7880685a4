package nft

import "github.com/dockernet/cni-plugins/plugins/pkg/netfilter"

// ProbeSpecs checks that every element of specs is in its set (the base
// is ProbeBase's), and that every source list they jump to is whole: what
// a flush of one set (nft flush set ip dnet guard_protect) removes while
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
	err = b.elemsPresent(c, want, "an attachment's")
	done(nil)
	if err != nil {
		return err
	}
	all := make([]srcList, 0, len(lists))
	for _, list := range lists {
		all = append(all, list)
	}
	return b.checkLists(l, all)
}
