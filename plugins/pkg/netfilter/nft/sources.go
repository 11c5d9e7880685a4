package nft

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/big"
	"net"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// The source allowlists of published ports (allowedSources,
// sourceRanges) live in this table whichever backend publishes the
// ports: the nftables backend adds them with its port elements, and these
// are the netfilter.SourceFilter the iptables backend is given.
//
// A list is a set and a chain named after its content (srcl_<hash>), so
// every port with the same list (a network's allowedSources) shares one
// copy, and a connection costs one lookup in it however many ports use
// it. Each ADD sends the whole list again with its port: adding what is
// there changes nothing, and a list another DEL removed in between comes
// back whole. A DEL removes a list its ports no longer use; the kernel
// refuses to delete a chain something still jumps to, which is what says
// "still used".

// srcListPrefix starts the name of every list's set and chain.
const srcListPrefix = "srcl_"

// srcList is one allowlist of one family: its name and its networks.
type srcList struct {
	name string
	nets []*net.IPNet
}

// listOf names the list of nets by its content.
func (l *layout) listOf(nets []*net.IPNet) srcList {
	keys := make([]string, len(nets))
	for i, n := range nets {
		keys[i] = n.String()
	}
	sort.Strings(keys)
	sum := sha256.Sum256([]byte(l.f.String() + " " + strings.Join(keys, ",")))
	return srcList{name: srcListPrefix + hex.EncodeToString(sum[:8]), nets: nets}
}

func (l *layout) listSet(name string) *nftables.Set {
	return &nftables.Set{Table: l.table, Name: name, KeyType: l.addrType, Interval: true}
}

// listElems are the interval elements of nets: each merged range as its
// first address and, flagged as an end, the address after its last, with
// the leading end at address zero that nft sends too.
func (l *layout) listElems(nets []*net.IPNet) []nftables.SetElement {
	type span struct{ first, last *big.Int }
	var spans []span
	for _, n := range nets {
		first, last := netBounds(n)
		spans = append(spans, span{new(big.Int).SetBytes(l.addrBytes(first)), new(big.Int).SetBytes(l.addrBytes(last))})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].first.Cmp(spans[j].first) < 0 })
	var merged []span
	one := big.NewInt(1)
	for _, s := range spans {
		if k := len(merged) - 1; k >= 0 && s.first.Cmp(new(big.Int).Add(merged[k].last, one)) <= 0 {
			if s.last.Cmp(merged[k].last) > 0 {
				merged[k].last = s.last
			}
			continue
		}
		merged = append(merged, s)
	}
	bytesOf := func(v *big.Int) []byte { return v.FillBytes(make([]byte, l.addrLen)) }
	var out []nftables.SetElement
	if len(merged) > 0 && merged[0].first.Sign() != 0 {
		out = append(out, nftables.SetElement{Key: make([]byte, l.addrLen), IntervalEnd: true})
	}
	limit := new(big.Int).Lsh(one, uint(8*l.addrLen))
	for _, s := range merged {
		out = append(out, nftables.SetElement{Key: bytesOf(s.first)})
		if end := new(big.Int).Add(s.last, one); end.Cmp(limit) < 0 {
			out = append(out, nftables.SetElement{Key: bytesOf(end), IntervalEnd: true})
		}
	}
	return out
}

// ensureList queues list's set with every element, and its chain with its
// one rule, into the batch; all of it idempotent.
func (l *layout) ensureList(c *nftables.Conn, list srcList) error {
	chain := c.AddChain(&nftables.Chain{Name: list.name, Table: l.table})
	c.FlushChain(chain)
	drop := []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}
	if len(list.nets) > 0 {
		set := l.listSet(list.name)
		if err := c.AddSet(set, nil); err != nil {
			return err
		}
		elems := l.listElems(list.nets)
		for len(elems) > 0 {
			n := min(len(elems), elemsPerMessage)
			if err := c.SetAddElements(set, elems[:n]); err != nil {
				return err
			}
			elems = elems[n:]
		}
		drop = append([]expr.Any{l.saddr(1), &expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID, Invert: true}}, drop...)
	}
	c.AddRule(&nftables.Rule{Table: l.table, Chain: chain, Exprs: drop})
	return nil
}

// listShell queues list's chain and set, empty if they are not there:
// what a deletion of elements jumping to it needs, and no more. The DEL's
// dropLists removes them again when nothing else uses them.
func (l *layout) listShell(c *nftables.Conn, list srcList) error {
	c.AddChain(&nftables.Chain{Name: list.name, Table: l.table})
	if len(list.nets) == 0 {
		return nil
	}
	return c.AddSet(l.listSet(list.name), nil)
}

// dropUnusedLists deletes each of names that nothing jumps to any more, a
// batch each: the kernel refuses (EBUSY) a chain still in use, and that
// refusal leaves the list in place.
func (b *Backend) dropUnusedLists(names []string) error {
	l := newLayout(b.family)
	var errs []error
	for _, name := range names {
		c, done, err := b.dial()
		if err != nil {
			return err
		}
		chain := &nftables.Chain{Name: name, Table: l.table}
		c.DelChain(chain)
		c.DelSet(l.listSet(name))
		err = c.Flush()
		done(err)
		if err != nil && !errors.Is(err, unix.EBUSY) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// dropLists is what a DEL runs once its elements are gone: it drops the
// lists the owner's ports used (by record) or, without a record, every
// list of the table if the owner had a limited port at all, or might have.
func (b *Backend) dropLists(lists []srcList, recorded bool, mappings []netfilter.PortMapping) func() error {
	limits := !recorded
	for _, m := range mappings {
		limits = limits || len(m.Sources) > 0
	}
	if !limits {
		return nil
	}
	return func() error {
		if recorded {
			names := make([]string, len(lists))
			for i, list := range lists {
				names[i] = list.name
			}
			return b.dropUnusedLists(names)
		}
		c, done, err := b.dial()
		if err != nil {
			return err
		}
		chains, err := c.ListChainsOfTableFamily(b.family.NFT())
		done(nil)
		if err != nil {
			return nil // no table: no list
		}
		var names []string
		for _, ch := range chains {
			if ch.Table.Name == Table && strings.HasPrefix(ch.Name, srcListPrefix) {
				names = append(names, ch.Name)
			}
		}
		return b.dropUnusedLists(names)
	}
}

// AddSources queues the allowlists of spec's mappings alone: the
// netfilter.SourceFilter the iptables backend uses.
func (b *Backend) AddSources(tx *netfilter.Txn, spec netfilter.PortMapSpec) {
	l := newLayout(b.family)
	elems, lists := l.sourceElems(spec)
	b.part(tx).queue(op{what: "source allowlist of container " + spec.Owner.ContainerID, f: b.family, add: elems, lists: lists})
}

// DelSources queues the removal of spec's allowlists.
func (b *Backend) DelSources(tx *netfilter.Txn, spec netfilter.PortMapSpec) {
	l := newLayout(b.family)
	elems, lists := l.sourceElems(spec)
	o := b.delOp("source allowlist", spec.Owner, spec.ContainerIP != nil, func() []elem { return elems },
		l.srcPorts, l.srcPortsBound, l.srcLimited, l.srcAllowed)
	o.lists, o.after = lists, b.dropLists(lists, spec.ContainerIP != nil, spec.Mappings)
	b.part(tx).queue(o)
}

// CheckSources verifies spec's allowlists: their ports' elements, and each
// list's set with its elements.
func (b *Backend) CheckSources(spec netfilter.PortMapSpec) error {
	l := newLayout(b.family)
	elems, lists := l.sourceElems(spec)
	if len(elems) == 0 && len(lists) == 0 {
		return nil // no limited port in this family: nothing was added
	}
	if err := b.check(l, elems, "source allowlist"); err != nil {
		return err
	}
	return b.checkLists(l, lists)
}

func (b *Backend) checkLists(l *layout, lists []srcList) error {
	if len(lists) == 0 {
		return nil
	}
	c, done, err := b.dial()
	if err != nil {
		return err
	}
	defer done(nil)
	for _, list := range lists {
		chain, err := c.ListChain(l.table, list.name)
		if err != nil {
			return errors.New(b.family.String() + " nftables: the chain of source allowlist " + list.name + " is missing")
		}
		if rules, err := c.GetRules(l.table, chain); err != nil || len(rules) != 1 {
			return errors.New(b.family.String() + " nftables: the drop of source allowlist " + list.name + " is missing")
		}
		if len(list.nets) == 0 {
			continue
		}
		have, err := c.GetSetElements(l.listSet(list.name))
		if err != nil {
			return errors.New(b.family.String() + " nftables: the set of source allowlist " + list.name + " is missing")
		}
		if !sameElems(have, l.listElems(list.nets)) {
			return errors.New(b.family.String() + " nftables: source allowlist " + list.name + " holds other addresses than its name says")
		}
	}
	return nil
}

// sameElems compares interval elements by key and end flag, in any order.
func sameElems(a, b []nftables.SetElement) bool {
	if len(a) != len(b) {
		return false
	}
	key := func(e nftables.SetElement) string {
		if e.IntervalEnd {
			return "e" + string(e.Key)
		}
		return "s" + string(e.Key)
	}
	count := map[string]int{}
	for _, e := range a {
		count[key(e)]++
	}
	for _, e := range b {
		count[key(e)]--
	}
	for _, n := range count {
		if n != 0 {
			return false
		}
	}
	return true
}
