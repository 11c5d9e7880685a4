package nft

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// Backend is the nftables backend for one family: changes are elements
// added to or deleted from the sets and maps of its table, queued on a
// netfilter.Txn and sent as one netlink batch.
type Backend struct {
	family netfilter.Family
	dial   netfilter.NFTDial
	// accepts adds each network's accept rules where another firewall's
	// FORWARD could drop what this table lets through; nil: nowhere.
	accepts netfilter.ForwardAccepts
}

// Features: the nftables backend has none of the iptables-only portmap keys.
var Features = netfilter.Features{}

// New returns the backend for family f. accepts is where the forward
// half's accept rules go besides this table (iptables' filter tables).
func New(f netfilter.Family, accepts netfilter.ForwardAccepts) (*Backend, error) {
	if !netfilter.NFTablesAvailable() {
		return nil, errors.New("nftables backend unavailable: the kernel does not answer nf_tables netlink requests")
	}
	return &Backend{family: f, dial: netfilter.NFTConn, accepts: accepts}, nil
}

// NewWithDial is New over another connection (a fake kernel in tests).
func NewWithDial(f netfilter.Family, dial netfilter.NFTDial, accepts netfilter.ForwardAccepts) *Backend {
	return &Backend{family: f, dial: dial, accepts: accepts}
}

func (b *Backend) Name() string             { return netfilter.NameNFTables }
func (b *Backend) Family() netfilter.Family { return b.family }

func (b *Backend) AddPortMappings(tx *netfilter.Txn, spec netfilter.PortMapSpec) {
	if lacks := Features.Lacks(spec.Needs()); len(lacks) > 0 {
		tx.Fail(fmt.Errorf("%s nftables: %v are iptables features: drop them or use the iptables backend", b.family, lacks))
		return
	}
	l := newLayout(b.family)
	elems := append(l.portElems(spec), l.hairpinElems(spec)...)
	_, lists := l.sourceElems(spec)
	b.part(tx).queue(op{
		what: "publish ports of container " + spec.Owner.ContainerID, f: b.family, add: elems, lists: lists,
		onExists: func() error { return b.conflict(spec) },
	})
}

func (b *Backend) DelPortMappings(tx *netfilter.Txn, spec netfilter.PortMapSpec) {
	l := newLayout(b.family)
	_, lists := l.sourceElems(spec)
	o := b.delOp("ports", spec.Owner, spec.ContainerIP != nil, func() []elem { return l.portElems(spec) },
		l.hostPorts, l.hostPortsBound, l.masqAll, l.srcPorts, l.srcPortsBound, l.srcLimited, l.srcAllowed, l.guardOpen)
	o.lists, o.after = lists, b.dropLists(lists, spec.ContainerIP != nil, spec.Mappings)
	b.part(tx).queue(o)
}

// queueDel queues the removal of owner's elements of one kind (what):
// those elems gives when recorded, else those of sets carrying owner's tag.
func (b *Backend) queueDel(tx *netfilter.Txn, what string, owner netfilter.Owner, recorded bool, elems func() []elem, sets ...*nftables.Set) {
	b.part(tx).queue(b.delOp(what, owner, recorded, elems, sets...))
}

func (b *Backend) delOp(what string, owner netfilter.Owner, recorded bool, elems func() []elem, sets ...*nftables.Set) op {
	o := op{what: "remove " + what + " of container " + owner.ContainerID, f: b.family, owner: owner, sets: sets}
	if recorded {
		o.del = elems()
	}
	return o
}

func (b *Backend) CheckPortMappings(spec netfilter.PortMapSpec) error {
	l := newLayout(b.family)
	if err := b.check(l, append(l.portElems(spec), l.hairpinElems(spec)...), "port mapping"); err != nil {
		return err
	}
	_, lists := l.sourceElems(spec)
	return b.checkLists(l, lists)
}

func (b *Backend) AddMasquerade(tx *netfilter.Txn, spec netfilter.MasqSpec) {
	l := newLayout(b.family)
	b.part(tx).queue(op{what: "masquerade for container " + spec.Owner.ContainerID, f: b.family, add: l.masqElems(spec)})
}

func (b *Backend) DelMasquerade(tx *netfilter.Txn, spec netfilter.MasqSpec) {
	l := newLayout(b.family)
	b.queueDel(tx, "masquerade", spec.Owner, spec.IP != nil, func() []elem { return l.masqElems(spec) },
		l.masqIPs, l.masqLocal, l.masqExcept)
}

func (b *Backend) CheckMasquerade(spec netfilter.MasqSpec) error {
	l := newLayout(b.family)
	return b.check(l, l.masqElems(spec), "masquerade")
}

// AddForward adds the attachment's elements and, after the batch, the
// network's accepts in other firewalls (through the accepts seam).
func (b *Backend) AddForward(tx *netfilter.Txn, spec netfilter.ForwardSpec) {
	l := newLayout(b.family)
	o := op{what: "forwarding rules for container " + spec.Owner.ContainerID, f: b.family, add: l.forwardElems(spec)}
	if b.accepts != nil {
		o.after = func() error { return b.accepts.Ensure(b.family, spec.Bridge) }
		o.afterKey = fmt.Sprintf("accepts %s %s", b.family, spec.Bridge)
	}
	b.part(tx).queue(o)
}

// DelForward removes the attachment's elements; the network's accepts
// elsewhere stay, as the bridge does.
func (b *Backend) DelForward(tx *netfilter.Txn, spec netfilter.ForwardSpec) {
	l := newLayout(b.family)
	b.queueDel(tx, "forwarding rules", spec.Owner, spec.IP != nil, func() []elem { return l.forwardDelElems(spec) },
		l.fwdMembers, l.fwdProtect, l.fwdIsolate, l.fwdNoICC, l.guardProtect, l.guardTrusted, l.guardICMP)
}

// DelForwardGuard empties fwd_guard: the forward chain's last drop ends
// at its first lookup again.
func (b *Backend) DelForwardGuard(tx *netfilter.Txn) {
	l := newLayout(b.family)
	b.part(tx).queue(op{what: "remove the forwarding guard", f: b.family, del: []elem{l.guardElem()}})
}

// DelNetwork removes the bridge's hairpin_ifs element and, after the
// batch, its accepts in other firewalls; its attachments' elements went
// with their DELs.
func (b *Backend) DelNetwork(tx *netfilter.Txn, bridge string) {
	l := newLayout(b.family)
	o := op{what: "remove the rules of bridge " + bridge, f: b.family,
		del: []elem{{l.hairpin, nftables.SetElement{Key: ifname(bridge), Comment: netfilter.CommentBase}}}}
	if b.accepts != nil {
		o.after = func() error { return b.accepts.Remove(b.family, bridge) }
	}
	b.part(tx).queue(o)
}

func (b *Backend) CheckForward(spec netfilter.ForwardSpec) error {
	l := newLayout(b.family)
	if err := b.check(l, l.forwardElems(spec), "forwarding"); err != nil {
		return err
	}
	if b.accepts == nil {
		return nil
	}
	return b.accepts.Check(b.family, spec.Bridge)
}

// conflict names the owner of a host port this spec wanted.
func (b *Backend) conflict(spec netfilter.PortMapSpec) error {
	c, done, err := b.dial()
	if err == nil {
		defer func() { done(nil) }()
		l := newLayout(b.family)
		for _, want := range l.portElems(spec) {
			have, err := c.GetSetElements(want.set)
			if err != nil {
				continue
			}
			for _, h := range have {
				if string(h.Key) == string(want.e.Key) && h.Comment != want.e.Comment {
					m := describeKey(want.set.Name, h.Key, l)
					return fmt.Errorf("host port %s is already published by %s: unpublish it there or pick another hostPort", m, netfilter.DescribeOwner(h.Comment))
				}
			}
		}
	}
	return fmt.Errorf("%s nftables: a host port of container %s is already published by another container", b.family, spec.Owner.ContainerID)
}

func describeKey(set string, key []byte, l *layout) string {
	host := "0.0.0.0"
	if l.f == netfilter.IPv6 {
		host = "[::]"
	}
	if set == SetHostPortsBound {
		host = net.IP(key[:l.addrLen]).String()
		key = key[l.addrLen:]
	}
	proto := map[byte]string{unix.IPPROTO_TCP: "tcp", unix.IPPROTO_UDP: "udp", unix.IPPROTO_SCTP: "sctp"}[key[0]]
	return fmt.Sprintf("%d/%s on %s", int(key[4])<<8|int(key[5]), proto, host)
}

// check verifies the base and that each element of l's sets is present with its data.
func (b *Backend) check(l *layout, elems []elem, what string) (err error) {
	c, done, err := b.dial()
	if err != nil {
		return err
	}
	defer func() { done(nil) }()
	if missing := l.incomplete(c, func() bool { return l.needsHooks(elems) }); missing != "" {
		return fmt.Errorf("%s nftables: table %s is incomplete: %s is missing or changed", b.family, Table, missing)
	}
	return b.elemsPresent(c, elems, what)
}

// elemsPresent verifies that each of elems is in its set with its data:
// each set dumped once and indexed by key, so a probe of every
// attachment's elements costs a dump per set, not a scan per element.
func (b *Backend) elemsPresent(c netfilter.NFTSession, elems []elem, what string) error {
	sets := map[string]map[string]nftables.SetElement{}
	for _, want := range elems {
		have, ok := sets[want.set.Name]
		if !ok {
			dump, err := c.GetSetElements(want.set)
			if err != nil {
				return fmt.Errorf("%s nftables: read %s: %w", b.family, want.set.Name, err)
			}
			have = make(map[string]nftables.SetElement, len(dump))
			for _, e := range dump {
				have[string(e.Key)] = e
			}
			sets[want.set.Name] = have
		}
		if h, ok := have[string(want.e.Key)]; !ok || !sameData(h, want.e) {
			return fmt.Errorf("%s nftables: %s element for %s is missing from %s", b.family, what, want.e.Comment, want.set.Name)
		}
	}
	return nil
}

// sameData compares an element's data: a value, or a verdict, which
// google/nftables hands back undecoded (NFTA_DATA_VERDICT's attributes),
// where a jump's chain is its name as a string.
func sameData(have, want nftables.SetElement) bool {
	if want.VerdictData == nil {
		return string(have.Val) == string(want.Val)
	}
	return strings.Contains(string(have.Val), want.VerdictData.Chain+"\x00")
}

// ProbeBase reports whether this family's table is there with its whole
// base (chains with their rules, sets): what every attachment relies on,
// and what a flush or a reload removes. A few dumps.
func (b *Backend) ProbeBase(kinds netfilter.BaseKinds) error {
	if err := b.probeTable(); err != nil {
		return err
	}
	if kinds.Forward && b.accepts != nil {
		return b.accepts.Probe(b.family)
	}
	return nil
}

func (b *Backend) probeTable() error {
	c, done, err := b.dial()
	if err != nil {
		return err
	}
	defer done(nil)
	l := newLayout(b.family)
	if _, err := c.ListTableOfFamily(Table, b.family.NFT()); err != nil {
		return fmt.Errorf("%s nftables: table %s is gone", b.family, Table)
	}
	// The elements, not the records, say whether the hooks are due: a
	// record may hold a spec that writes nothing in this family.
	if what := l.incomplete(c, func() bool { return l.inUse(c) }); what != "" {
		return fmt.Errorf("%s nftables: table %s lacks %s", b.family, Table, what)
	}
	return nil
}
