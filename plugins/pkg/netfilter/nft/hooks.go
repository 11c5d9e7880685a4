package nft

import (
	"errors"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// The filter hooks. Every packet on prerouting, output and forward pays
// for each base chain hooked there, even when the chain's first rule
// accepts it: on a vxlan node each MTU-sized packet crosses them twice,
// outer and inner. So the three filter base chains (guard, guard_out,
// forward) exist only while an element needs one of their rules: a
// protected container, an isolated network, the forwarding guard, a
// published port or allowlist, a bridge with route_localnet for
// 127.0.0.1 mappings (its hairpin_ifs element, kept until the network
// goes). Each is a single jump to a regular chain of the base holding
// the rules (guard_rules, guard_out_rules, forward_rules), so the rules
// are checked and repaired with the base and only the hooks come and go.
// In Kubernetes mode without hostPorts, none is there.
//
// An ADD that writes an element of a filter set queues the hooks in its
// own batch whatever it found: the protection lands atomically with the
// element. Each queueing flushes and re-adds each hook's jump, which
// gives the jump a new rule handle. A removal whose batch deleted
// elements of a filter set then unhooks when every filter set is empty,
// in a batch that first deletes guard's jump by the handle it read
// before it looked at the sets: if an ADD landed in between, that handle
// is gone, the kernel refuses the whole batch (ENOENT) and the hooks
// stay. Leaving them is always safe; removing them is only ever done by
// a batch no ADD came between.

// hookChain is a filter base chain: its hook, and the chain of rules it
// jumps to.
type hookChain struct {
	chainSpec
	target string
}

func hookChains() []hookChain {
	return []hookChain{
		{chainSpec{ChainGuard, nftables.ChainTypeFilter, nftables.ChainHookPrerouting, nftables.ChainPriorityMangle}, ChainGuardRules},
		{chainSpec{ChainGuardOut, nftables.ChainTypeFilter, nftables.ChainHookOutput, nftables.ChainPriorityMangle}, ChainGuardOutRules},
		{chainSpec{ChainForward, nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter}, ChainForwardRules},
	}
}

var hookChainNames = sync.OnceValue(func() []string {
	var names []string
	for _, h := range hookChains() {
		names = append(names, h.name)
	}
	return names
})

// rule is the hook's one rule.
func (h hookChain) rule() []expr.Any {
	return []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: h.target}}
}

// filterSets are the sets an element of which needs the hooks.
func (l *layout) filterSets() []*nftables.Set {
	// guard_protect first: it holds every protected container, so a
	// Docker-like host's removal finds it in use at the first look.
	return []*nftables.Set{l.guardProtect, l.hostPorts, l.hostPortsBound, l.hairpin, l.srcPorts, l.srcPortsBound,
		l.fwdGuard, l.fwdIsolate, l.fwdIsolateOut, l.fwdNoICC, l.guardOpen, l.guardICMP, l.guardTrusted}
}

// filterSetNames are filterSets' names, alike in both families.
var filterSetNames = sync.OnceValue(func() map[string]bool {
	names := map[string]bool{}
	for _, s := range newLayout(netfilter.IPv4).filterSets() {
		names[s.Name] = true
	}
	return names
})

func (l *layout) isFilterSet(s *nftables.Set) bool { return filterSetNames()[s.Name] }

// needsHooks reports whether any of elems is in a filter set.
func (l *layout) needsHooks(elems []elem) bool {
	for _, e := range elems {
		if l.isFilterSet(e.set) {
			return true
		}
	}
	return false
}

// mayUnhook reports whether o removes elements of a filter set.
func (l *layout) mayUnhook(o op) bool {
	if len(o.add) > 0 {
		return false
	}
	if len(o.del) > 0 {
		return l.needsHooks(o.del)
	}
	for _, s := range o.sets {
		if l.isFilterSet(s) {
			return true
		}
	}
	return false
}

// ensureHooks queues the three hooks, each flushed and given its jump.
func (l *layout) ensureHooks(c *nftables.Conn) {
	for _, h := range hookChains() {
		ch := c.AddChain(&nftables.Chain{Name: h.name, Table: l.table, Type: h.kind, Hooknum: h.hook, Priority: h.priority})
		c.FlushChain(ch)
		c.AddRule(&nftables.Rule{Table: l.table, Chain: ch, Exprs: h.rule()})
	}
}

// incomplete is what missing names or, when the base is whole but the
// hooks are not all there and need says they are due, the hooks.
func (l *layout) incomplete(c netfilter.NFTSession, need func() bool) string {
	what, hooks := l.missing(c)
	if what == "" && hooks < len(hookChains()) && need() {
		what = "the filter hooks (chains " + strings.Join(hookChainNames(), ", ") + ")"
	}
	return what
}

// inUse reports whether a filter set holds an element; unsure is yes.
func (l *layout) inUse(c netfilter.NFTSession) bool {
	for _, s := range l.filterSets() {
		if full, err := hasElements(c, l.table, s.Name); err != nil || full {
			return true
		}
	}
	return false
}

// unhookIfUnused removes the hooks when no filter set holds an element,
// unless an ADD lands between its look and its batch (see above). An
// error leaves them.
func (l *layout) unhookIfUnused(c netfilter.NFTSession) error {
	token, ok := l.hookToken(c)
	if !ok || l.inUse(c) {
		return nil
	}
	return l.unhookAt(c, token)
}

// hookToken is the handle of guard's jump, which every ADD that queues
// the hooks renews; false when guard is not there as made (the repair's
// to mend, not the removal's).
func (l *layout) hookToken(c netfilter.NFTSession) (uint64, bool) {
	jumps, err := c.GetRules(l.table, &nftables.Chain{Name: ChainGuard, Table: l.table})
	if err != nil || len(jumps) != 1 || jumps[0].Handle == 0 {
		return 0, false
	}
	return jumps[0].Handle, true
}

// unhookAt removes the three hooks in one batch that the kernel refuses
// unless guard's jump still has the handle token.
func (l *layout) unhookAt(c netfilter.NFTSession, token uint64) error {
	guard := &nftables.Chain{Name: ChainGuard, Table: l.table}
	c.DelRule(&nftables.Rule{Table: l.table, Chain: guard, Handle: token})
	for _, h := range hookChains() {
		ch := &nftables.Chain{Name: h.name, Table: l.table}
		c.FlushChain(ch)
		c.DelChain(ch)
	}
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

// hasElements reports whether table's set name holds an element: one
// dump, nothing decoded but whether its element list is empty.
func hasElements(c netfilter.NFTSession, table *nftables.Table, name string) (bool, error) {
	data, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: []byte(table.Name + "\x00")},
		{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: []byte(name + "\x00")},
	})
	if err != nil {
		return false, err
	}
	replies, err := c.Raw(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSETELEM), Flags: netlink.Dump},
		Data:   append([]byte{byte(table.Family), unix.NFNETLINK_V0, 0, 0}, data...),
	})
	if errors.Is(err, unix.ENOENT) {
		return false, nil // no such set: no element
	}
	if err != nil {
		return false, err
	}
	for _, m := range replies {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return false, err
		}
		for ad.Next() {
			// An empty set's dump still carries the list, empty.
			if ad.Type() == unix.NFTA_SET_ELEM_LIST_ELEMENTS && len(ad.Bytes()) > 0 {
				return true, nil
			}
		}
	}
	return false, nil
}
