package netfilter

// The nftables backend talks netlink directly (no nft process): one table
// per family, shared by portmap and bridge, where every attachment is a few
// map/set elements and no attachment has a rule of its own. A new connection
// costs two hash lookups whatever the number of published ports.
//
//	table ip dnet {                                  (ip6 dnet: same, ipv6_addr, no 127/8 rule)
//	  map hostports       { type inet_proto . inet_service : ipv4_addr . inet_service }            every local address
//	  map hostports_bound { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service } one host address
//	  set hairpin_ifs     { type ifname }            bridges whose containers' host-port connections are masqueraded
//	  set masq_all        { type ipv4_addr }         containers whose published ports are always masqueraded (masqAll)
//	  set masq_ips        { type ipv4_addr }         bridge ipMasq: container sources ...
//	  set masq_local      { type ipv4_addr . ifname }  ... and the bridge they are not masqueraded on
//	  set masq_except     { type ipv4_addr . ipv4_addr; flags interval }  ... and destinations they are not masqueraded to
//	  chain prerouting  { type nat hook prerouting priority dstnat;
//	    ip daddr 127.0.0.0/8 drop                    (ip6: ::1) loopback from outside: see loopbackDrop
//	    fib daddr type local jump hostports
//	  }
//	  chain output      { type nat hook output priority dstnat; fib daddr type local jump hostports }
//	  chain hostports {
//	    iifname @hairpin_ifs meta mark set meta mark | 0x2000          hairpin: from a container
//	    dnat ip to ip daddr . meta l4proto . th dport map @hostports_bound
//	    dnat ip to meta l4proto . th dport map @hostports
//	  }
//	  chain postrouting { type nat hook postrouting priority srcnat;
//	    ct status dnat ip saddr 127.0.0.0/8 masquerade                   localhost -> container
//	    ct status dnat meta mark & 0x2000 == 0x2000 masquerade           container -> host port -> container
//	    ct status dnat ip daddr @masq_all masquerade
//	    ip saddr @masq_ips ip saddr . oifname != @masq_local ip saddr . ip daddr != @masq_except
//	        ip daddr != 224.0.0.0/4 masquerade
//	  }
//	  set fwd_members  { type ipv4_addr . ifname }  every container address and its bridge
//	  set fwd_protect  { type ipv4_addr . ifname }  ... of networks with direct-routing protection
//	  set fwd_isolate  { type ipv4_addr . ifname }  ... of networks isolated from each other
//	  set fwd_noicc    { type ipv4_addr . ifname }  ... of networks without container-to-container traffic
//	  chain forward { type filter hook forward priority filter; policy accept;
//	    ct state established,related accept                                  a connection's later packets skip the lookups
//	    ct direction original ct status & dnat == 0 ip daddr . oifname @fwd_protect
//	        ip daddr . iifname != @fwd_members drop                             direct routing from outside the bridge
//	    ct status & dnat == 0 ip saddr . iifname @fwd_isolate ip daddr . oifname @fwd_isolate
//	        ip daddr . iifname != @fwd_members drop                             another isolated network
//	    ct status & dnat == 0 ip saddr . iifname @fwd_noicc ip daddr . oifname @fwd_noicc
//	        ip daddr . iifname @fwd_members drop                                the same bridge, icc off
//	  }
//	}
//
// The forward chain's one accept ends this chain for a connection's later
// packets; it cannot override a drop in another table on the same hook
// (iptables' FORWARD policy, for one), nor could any accept here. Where an
// iptables filter table exists, a few per-network accept rules go there too
// (see iptables_forward.go).
//
// The input interface is unknown in postrouting, so hairpin connections are
// recognised where it is known (the hostports chain) and marked with bit 13,
// the reference portmap's default masquerade bit.
//
// Every element carries its owner's comment. An ADD or DEL is one netlink
// batch per family, which the kernel commits atomically. DEL deletes the
// exact elements recorded at ADD with the "add, then delete" idiom, which
// succeeds whether or not they still exist; without a record, it dumps the
// maps and deletes the elements whose comment carries the owner's tag.

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

const (
	nftTable          = "dnet"
	setHostPorts      = "hostports"
	setHostPortsBound = "hostports_bound"
	setHairpinIfs     = "hairpin_ifs"
	setMasqAll        = "masq_all"
	setMasqIPs        = "masq_ips"
	setMasqLocal      = "masq_local"
	setMasqExcept     = "masq_except"
	setFwdMembers     = "fwd_members"
	setFwdProtect     = "fwd_protect"
	setFwdIsolate     = "fwd_isolate"
	setFwdNoICC       = "fwd_noicc"
	chainFwd          = "forward"
	chainPre          = "prerouting"
	chainOut          = "output"
	chainHP           = "hostports"
	chainPost         = "postrouting"
	ipsDstNAT         = 0x20 // IPS_DST_NAT: conntrack status bit of a DNATed flow
	nftMarkBit        = DefaultMarkBit
)

type nfTables struct {
	family Family
	opts   Options // for the accept rules it adds to iptables
}

// NFTablesAvailable reports whether the kernel answers nf_tables netlink.
// Asked once per process: a plugin run is short, and the answer is the same
// for backend selection, each family's backend and the DEL fallback.
var NFTablesAvailable = sync.OnceValue(func() bool {
	c, done, err := nftConn()
	if err != nil {
		return false
	}
	_, err = c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	done(err)
	return err == nil
})

func newNFTables(f Family, opts Options) (*nfTables, error) {
	if !NFTablesAvailable() {
		return nil, errors.New("nftables backend unavailable: the kernel does not answer nf_tables netlink requests")
	}
	return &nfTables{family: f, opts: opts}, nil
}

func (b *nfTables) Name() string   { return "nftables" }
func (b *nfTables) Family() Family { return b.family }

// layout is the table, its sets and chains for one family.
type layout struct {
	f                                                               Family
	table                                                           *nftables.Table
	hostPorts, hostPortsBound, hairpin, masqAll, masqIPs, masqLocal *nftables.Set
	masqExcept                                                      *nftables.Set
	fwdMembers, fwdProtect, fwdIsolate, fwdNoICC                    *nftables.Set
	addrType                                                        nftables.SetDatatype
	addrLen                                                         uint32 // bytes of an address
}

func newLayout(f Family) *layout {
	l := &layout{f: f, addrType: nftables.TypeIPAddr, addrLen: 4}
	tf := nftables.TableFamilyIPv4
	if f == IPv6 {
		l.addrType, l.addrLen, tf = nftables.TypeIP6Addr, 16, nftables.TableFamilyIPv6
	}
	l.table = &nftables.Table{Name: nftTable, Family: tf}
	target := nftables.MustConcatSetType(l.addrType, nftables.TypeInetService)
	l.hostPorts = &nftables.Set{Table: l.table, Name: setHostPorts, IsMap: true, Concatenation: true,
		KeyType: nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService), DataType: target}
	l.hostPortsBound = &nftables.Set{Table: l.table, Name: setHostPortsBound, IsMap: true, Concatenation: true,
		KeyType: nftables.MustConcatSetType(l.addrType, nftables.TypeInetProto, nftables.TypeInetService), DataType: target}
	// A string key: host byte order, or nft prints the name byte-swapped.
	l.hairpin = &nftables.Set{Table: l.table, Name: setHairpinIfs, KeyType: nftables.TypeIFName, KeyByteOrder: binaryutil.NativeEndian}
	l.masqAll = &nftables.Set{Table: l.table, Name: setMasqAll, KeyType: l.addrType}
	l.masqIPs = &nftables.Set{Table: l.table, Name: setMasqIPs, KeyType: l.addrType}
	addrIf := func(name string) *nftables.Set {
		return &nftables.Set{Table: l.table, Name: name, Concatenation: true,
			KeyType: nftables.MustConcatSetType(l.addrType, nftables.TypeIFName)}
	}
	l.masqLocal = addrIf(setMasqLocal)
	// Source address . destination range (a pipapo set, kernel 5.6 and later).
	l.masqExcept = &nftables.Set{Table: l.table, Name: setMasqExcept, Concatenation: true, Interval: true,
		KeyType: nftables.MustConcatSetType(l.addrType, l.addrType)}
	l.fwdMembers, l.fwdProtect = addrIf(setFwdMembers), addrIf(setFwdProtect)
	l.fwdIsolate, l.fwdNoICC = addrIf(setFwdIsolate), addrIf(setFwdNoICC)
	return l
}

func (l *layout) sets() []*nftables.Set {
	return []*nftables.Set{l.hostPorts, l.hostPortsBound, l.hairpin, l.masqAll, l.masqIPs, l.masqLocal, l.masqExcept,
		l.fwdMembers, l.fwdProtect, l.fwdIsolate, l.fwdNoICC}
}

// 32-bit register n (NFT_REG32_00 is 8); register 1 is the same memory as reg32(0).
func reg32(n uint32) uint32 { return 8 + n }

func (l *layout) saddr(reg uint32) expr.Any {
	off := uint32(12)
	if l.f == IPv6 {
		off = 8
	}
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: l.addrLen}
}

func (l *layout) daddr(reg uint32) expr.Any {
	off := uint32(16)
	if l.f == IPv6 {
		off = 24
	}
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: l.addrLen}
}

func (l *layout) nfproto() uint32 {
	if l.f == IPv6 {
		return unix.NFPROTO_IPV6
	}
	return unix.NFPROTO_IPV4
}

// ctDNAT matches a connection a DNAT rule rewrote.
func ctDNAT() []expr.Any { return ctStatusDNAT(expr.CmpOpNeq) }

// notDNAT matches a connection no DNAT rule rewrote.
func notDNAT() []expr.Any { return ctStatusDNAT(expr.CmpOpEq) }

// ctStatusDNAT compares the connection's DST_NAT status bit with zero.
func ctStatusDNAT(op expr.CmpOp) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: op, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

func fibLocalJump() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
		&expr.Verdict{Kind: expr.VerdictJump, Chain: chainHP},
	}
}

// rules returns the base rules of each chain, in order.
func (l *layout) rules() map[string][][]expr.Any {
	words := l.addrLen / 4 // 32-bit registers an address fills
	dnat := func(set *nftables.Set, key ...expr.Any) []expr.Any {
		// The counter is what dnetctl explain shows: connections DNATed
		// through the map (nat chains see a connection's first packet only).
		return append(key,
			&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: set.Name, SetID: set.ID},
			&expr.Counter{},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: l.nfproto(), RegAddrMin: 1, RegProtoMin: reg32(words)})
	}
	mark := uint32(1) << nftMarkBit
	hostports := [][]expr.Any{
		{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Lookup{SourceRegister: 1, SetName: l.hairpin.Name, SetID: l.hairpin.ID},
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(^mark), Xor: binaryutil.NativeEndian.PutUint32(mark)},
			&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
		},
		dnat(l.hostPortsBound, l.daddr(1),
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg32(words)},
			&expr.Payload{DestRegister: reg32(words + 1), Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}),
		dnat(l.hostPorts,
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Payload{DestRegister: reg32(1), Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}),
	}

	var post [][]expr.Any
	if l.f == IPv4 {
		post = append(post, append(ctDNAT(),
			l.saddr(1),
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 0, 0, 0}, Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{127, 0, 0, 0}},
			&expr.Masq{}))
	}
	post = append(post,
		append(ctDNAT(),
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(mark), Xor: binaryutil.NativeEndian.PutUint32(0)},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(mark)},
			&expr.Masq{}),
		append(ctDNAT(),
			l.daddr(1),
			&expr.Lookup{SourceRegister: 1, SetName: l.masqAll.Name, SetID: l.masqAll.ID},
			&expr.Masq{}),
		append([]expr.Any{
			l.saddr(1),
			&expr.Lookup{SourceRegister: 1, SetName: l.masqIPs.Name, SetID: l.masqIPs.ID},
			l.saddr(1),
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: reg32(words)},
			&expr.Lookup{SourceRegister: 1, SetName: l.masqLocal.Name, SetID: l.masqLocal.ID, Invert: true},
			l.saddr(1),
			l.daddr(reg32(words)),
			&expr.Lookup{SourceRegister: 1, SetName: l.masqExcept.Name, SetID: l.masqExcept.ID, Invert: true},
		}, append(l.notMulticast(), &expr.Masq{})...),
	)
	return map[string][][]expr.Any{
		chainPre:  {l.loopbackDrop(), fibLocalJump()},
		chainOut:  {fibLocalJump()},
		chainHP:   hostports,
		chainPost: post,
		chainFwd:  l.forwardRules(),
	}
}

// loopbackDrop drops what arrives from outside addressed to 127.0.0.0/8
// (::1): without it, a neighbour routing such packets here would reach a
// port published on 127.0.0.1, and a container (its bridge has
// route_localnet for that mapping) the host's loopback services.
// Prerouting never sees the host's own packets.
func (l *layout) loopbackDrop() []expr.Any {
	drop := &expr.Verdict{Kind: expr.VerdictDrop}
	if l.f == IPv4 {
		return []expr.Any{l.daddr(1),
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 0, 0, 0}, Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{127, 0, 0, 0}}, drop}
	}
	return []expr.Any{l.daddr(1), &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: net.IPv6loopback}, drop}
}

// forwardRules are the forward chain's drops, in order.
func (l *layout) forwardRules() [][]expr.Any {
	drop := &expr.Verdict{Kind: expr.VerdictDrop}
	words := l.addrLen / 4
	// in looks addr . ifname up in set (or, inverted, requires it absent).
	in := func(addr func(uint32) expr.Any, ifKey expr.MetaKey, set *nftables.Set, invert bool) []expr.Any {
		return []expr.Any{addr(1), &expr.Meta{Key: ifKey, Register: reg32(words)},
			&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID, Invert: invert}}
	}
	rule := func(parts ...[]expr.Any) []expr.Any {
		var out []expr.Any
		for _, p := range parts {
			out = append(out, p...)
		}
		return append(out, drop)
	}
	original := []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeyDIRECTION},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0}},
	}
	// Every drop below decides on a connection's first packet; the rest of
	// it skips the set lookups, which cost every forwarded packet otherwise.
	established := []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
	return [][]expr.Any{
		established,
		rule(original, notDNAT(),
			in(l.daddr, expr.MetaKeyOIFNAME, l.fwdProtect, false),
			in(l.daddr, expr.MetaKeyIIFNAME, l.fwdMembers, true)),
		rule(notDNAT(),
			in(l.saddr, expr.MetaKeyIIFNAME, l.fwdIsolate, false),
			in(l.daddr, expr.MetaKeyOIFNAME, l.fwdIsolate, false),
			in(l.daddr, expr.MetaKeyIIFNAME, l.fwdMembers, true)),
		rule(notDNAT(),
			in(l.saddr, expr.MetaKeyIIFNAME, l.fwdNoICC, false),
			in(l.daddr, expr.MetaKeyOIFNAME, l.fwdNoICC, false),
			in(l.daddr, expr.MetaKeyIIFNAME, l.fwdMembers, false)),
	}
}

func (l *layout) notMulticast() []expr.Any {
	if l.f == IPv4 {
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{0xf0}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0xe0}},
		}
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0xff}},
	}
}

type chainSpec struct {
	name     string
	kind     nftables.ChainType
	hook     *nftables.ChainHook
	priority *nftables.ChainPriority
}

func baseChains() []chainSpec {
	return []chainSpec{
		{chainPre, nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest},
		{chainOut, nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest},
		{chainHP, "", nil, nil},
		{chainPost, nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource},
		{chainFwd, nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter},
	}
}

// missing names the first chain or set of the base that the table lacks,
// or "" when it is complete; a few small netlink dumps, independent of the
// number of attachments.
func (l *layout) missing(c *nftables.Conn) string {
	want := l.rules()
	for _, ch := range baseChains() {
		rules, err := c.GetRules(l.table, &nftables.Chain{Name: ch.name, Table: l.table})
		if err != nil || len(rules) != len(want[ch.name]) {
			return "chain " + ch.name
		}
	}
	sets, err := c.GetSets(l.table)
	if err != nil || len(sets) != len(l.sets()) {
		return "a set"
	}
	return ""
}

// ensureBase queues the table, its sets, chains and rules into the batch.
// Chains are flushed before their rules are added, so it is idempotent and
// repairs a partly deleted table; set elements are kept.
func (l *layout) ensureBase(c *nftables.Conn) error {
	c.AddTable(l.table)
	for _, s := range l.sets() {
		if err := c.AddSet(s, nil); err != nil {
			return err
		}
	}
	chains := map[string]*nftables.Chain{}
	for _, ch := range baseChains() {
		chain := &nftables.Chain{Name: ch.name, Table: l.table}
		if ch.hook != nil {
			chain.Type, chain.Hooknum, chain.Priority = ch.kind, ch.hook, ch.priority
		}
		chains[ch.name] = c.AddChain(chain)
		c.FlushChain(chain)
	}
	rules := l.rules()
	for _, ch := range baseChains() {
		for _, exprs := range rules[ch.name] {
			c.AddRule(&nftables.Rule{Table: l.table, Chain: chains[ch.name], Exprs: exprs})
		}
	}
	return nil
}

func protoNum(p string) byte {
	switch p {
	case "udp":
		return unix.IPPROTO_UDP
	case "sctp":
		return unix.IPPROTO_SCTP
	}
	return unix.IPPROTO_TCP
}

func (l *layout) addrBytes(ip net.IP) []byte {
	if l.f == IPv4 {
		return ip.To4()
	}
	return ip.To16()
}

// pad4 pads a concatenation field to the 32-bit register size.
func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func port(p int) []byte { return []byte{byte(p >> 8), byte(p)} }

func ifname(name string) []byte {
	b := make([]byte, 16)
	copy(b, name)
	return b
}

// elem is one element with the set it belongs to.
type elem struct {
	set *nftables.Set
	e   nftables.SetElement
}

// portElems are the map elements of spec in this family.
func (l *layout) portElems(spec PortMapSpec) []elem {
	var out []elem
	comment := spec.Owner.Comment()
	for _, m := range spec.Mappings {
		hostIP, ok := HostIPFor(m, l.f)
		if !ok {
			continue
		}
		val := append(append([]byte{}, l.addrBytes(spec.ContainerIP)...), pad4(port(m.ContainerPort))...)
		key := append(pad4([]byte{protoNum(m.Protocol)}), pad4(port(m.HostPort))...)
		set := l.hostPorts
		if hostIP != "" {
			key = append(append([]byte{}, l.addrBytes(m.HostIP)...), key...)
			set = l.hostPortsBound
		}
		out = append(out, elem{set, nftables.SetElement{Key: key, Val: val, Comment: comment}})
	}
	if spec.SNAT && spec.MasqAll {
		out = append(out, elem{l.masqAll, nftables.SetElement{Key: l.addrBytes(spec.ContainerIP), Comment: comment}})
	}
	return out
}

func (l *layout) masqElems(spec MasqSpec) []elem {
	comment := spec.Owner.Comment()
	a := l.addrBytes(spec.IP)
	out := []elem{
		{l.masqIPs, nftables.SetElement{Key: a, Comment: comment}},
		{l.masqLocal, nftables.SetElement{Key: append(append([]byte{}, a...), ifname(spec.Bridge)...), Comment: comment}},
	}
	for _, n := range spec.Except {
		first, last := netBounds(n)
		out = append(out, elem{l.masqExcept, nftables.SetElement{
			Key:    append(append([]byte{}, a...), l.addrBytes(first)...),
			KeyEnd: append(append([]byte{}, a...), l.addrBytes(last)...), Comment: comment}})
	}
	return out
}

// netBounds are the first and last address of n.
func netBounds(n *net.IPNet) (net.IP, net.IP) {
	first := n.IP.Mask(n.Mask)
	last := make(net.IP, len(first))
	for i := range first {
		last[i] = first[i] | ^n.Mask[i]
	}
	return first, last
}

// forwardElems are spec's elements: its address on its bridge in the
// members set, and in the set of each protection its network has.
func (l *layout) forwardElems(spec ForwardSpec) []elem {
	comment := spec.Owner.Comment()
	key := append(append([]byte{}, l.addrBytes(spec.IP)...), ifname(spec.Bridge)...)
	out := []elem{{l.fwdMembers, nftables.SetElement{Key: key, Comment: comment}}}
	for _, on := range []struct {
		yes bool
		set *nftables.Set
	}{{spec.Protect, l.fwdProtect}, {spec.Isolate, l.fwdIsolate}, {spec.NoICC, l.fwdNoICC}} {
		if on.yes {
			out = append(out, elem{on.set, nftables.SetElement{Key: key, Comment: comment}})
		}
	}
	return out
}

func queueAdd(c *nftables.Conn, elems []elem) error {
	for _, e := range elems {
		if err := c.SetAddElements(e.set, []nftables.SetElement{e.e}); err != nil {
			return err
		}
	}
	return nil
}

// queueDelete deletes elems whether or not they exist: add (a no-op when
// present with the same data), then delete.
func queueDelete(c *nftables.Conn, elems []elem) error {
	if err := queueAdd(c, elems); err != nil {
		return err
	}
	for _, e := range elems {
		if err := c.SetDeleteElements(e.set, []nftables.SetElement{{Key: e.e.Key}}); err != nil {
			return err
		}
	}
	return nil
}

// add commits the base (when incomplete) and elems of l's sets in one batch.
func (b *nfTables) add(l *layout, elems []elem) (err error) {
	c, done, err := nftConn()
	if err != nil {
		return err
	}
	defer func() { done(err) }()
	if !c.baseOK[l.f] && l.missing(c.Conn) != "" {
		if err := l.ensureBase(c.Conn); err != nil {
			return err
		}
	}
	if err := queueAdd(c.Conn, elems); err != nil {
		return err
	}
	if !c.batching {
		if err := c.Flush(); err != nil {
			return err
		}
	}
	c.baseOK[l.f] = true
	return nil
}

func (b *nfTables) AddPortMappings(spec PortMapSpec) error {
	l := newLayout(b.family)
	elems := l.portElems(spec)
	if spec.SNAT && spec.HairpinIf != "" {
		// Shared by every container of the bridge, so tagged as base: no DEL removes it.
		elems = append(elems, elem{l.hairpin, nftables.SetElement{Key: ifname(spec.HairpinIf), Comment: commentBase}})
	}
	err := b.add(l, elems)
	if errors.Is(err, unix.EEXIST) {
		return b.conflict(spec)
	}
	if err != nil {
		return fmt.Errorf("%s nftables: publish ports of container %s: %w", b.family, spec.Owner.ContainerID, err)
	}
	return nil
}

// conflict names the owner of a host port this spec wanted.
func (b *nfTables) conflict(spec PortMapSpec) error {
	c, done, err := nftConn()
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
					return fmt.Errorf("host port %s is already published by %s: unpublish it there or pick another hostPort", m, DescribeOwner(h.Comment))
				}
			}
		}
	}
	return fmt.Errorf("%s nftables: a host port of container %s is already published by another container", b.family, spec.Owner.ContainerID)
}

func describeKey(set string, key []byte, l *layout) string {
	host := "0.0.0.0"
	if l.f == IPv6 {
		host = "[::]"
	}
	if set == setHostPortsBound {
		host = net.IP(key[:l.addrLen]).String()
		key = key[l.addrLen:]
	}
	proto := map[byte]string{unix.IPPROTO_TCP: "tcp", unix.IPPROTO_UDP: "udp", unix.IPPROTO_SCTP: "sctp"}[key[0]]
	return fmt.Sprintf("%d/%s on %s", int(key[4])<<8|int(key[5]), proto, host)
}

// del removes elems (or, with none known, every element of owner in sets).
func (b *nfTables) del(l *layout, o Owner, elems []elem, sets []*nftables.Set) (err error) {
	c, done, err := nftConn()
	if err != nil {
		return err
	}
	defer func() { done(err) }()
	if _, err := c.ListTableOfFamily(nftTable, l.table.Family); err != nil {
		return nil // no table: nothing of ours can be installed
	}
	if len(elems) > 0 {
		if err := queueDelete(c.Conn, elems); err != nil {
			return err
		}
		if c.batching {
			return nil
		}
		if err := c.Flush(); err == nil {
			return nil
		}
		// An element now holds other data (or a set is gone): fall back to
		// the comments, on a fresh connection.
		done(errors.New("batch refused"))
		if c, done, err = nftConn(); err != nil {
			done = func(error) {}
			return err
		}
	}
	return b.delByComment(c, o, sets)
}

// delByComment dumps sets and deletes the elements tagged with owner.
func (b *nfTables) delByComment(c nftSession, o Owner, sets []*nftables.Set) error {
	prefix := tagPrefix + o.Tag() + " "
	found := 0
	for _, s := range sets {
		have, err := c.GetSetElements(s)
		if err != nil {
			continue // the set is gone: nothing to delete there
		}
		var mine []nftables.SetElement
		for _, e := range have {
			if strings.HasPrefix(e.Comment, prefix) {
				mine = append(mine, nftables.SetElement{Key: e.Key, KeyEnd: e.KeyEnd})
			}
		}
		if len(mine) > 0 {
			found += len(mine)
			if err := c.SetDeleteElements(s, mine); err != nil {
				return err
			}
		}
	}
	if found == 0 || c.batching {
		return nil
	}
	return c.Flush()
}

func (b *nfTables) DelPortMappings(spec PortMapSpec) error {
	l := newLayout(b.family)
	var elems []elem
	if spec.ContainerIP != nil {
		elems = l.portElems(spec)
	}
	err := b.del(l, spec.Owner, elems, []*nftables.Set{l.hostPorts, l.hostPortsBound, l.masqAll})
	if err != nil {
		return fmt.Errorf("%s nftables: remove ports of container %s: %w", b.family, spec.Owner.ContainerID, err)
	}
	return nil
}

func (b *nfTables) AddMasquerade(spec MasqSpec) error {
	l := newLayout(b.family)
	if err := b.add(l, l.masqElems(spec)); err != nil {
		return fmt.Errorf("%s nftables: masquerade for container %s: %w", b.family, spec.Owner.ContainerID, err)
	}
	return nil
}

func (b *nfTables) DelMasquerade(spec MasqSpec) error {
	l := newLayout(b.family)
	var elems []elem
	if spec.IP != nil {
		elems = l.masqElems(spec)
	}
	err := b.del(l, spec.Owner, elems, []*nftables.Set{l.masqIPs, l.masqLocal, l.masqExcept})
	if err != nil {
		return fmt.Errorf("%s nftables: remove masquerade of container %s: %w", b.family, spec.Owner.ContainerID, err)
	}
	return nil
}

// check verifies the base and that each element of l's sets is present with its data.
func (b *nfTables) check(l *layout, elems []elem, what string) (err error) {
	c, done, err := nftConn()
	if err != nil {
		return err
	}
	defer func() { done(nil) }()
	if what := l.missing(c.Conn); what != "" {
		return fmt.Errorf("%s nftables: table %s is incomplete: %s is missing or changed", b.family, nftTable, what)
	}
	cache := map[string][]nftables.SetElement{}
	for _, want := range elems {
		have, ok := cache[want.set.Name]
		if !ok {
			if have, err = c.GetSetElements(want.set); err != nil {
				return fmt.Errorf("%s nftables: read %s: %w", b.family, want.set.Name, err)
			}
			cache[want.set.Name] = have
		}
		found := false
		for _, h := range have {
			if string(h.Key) == string(want.e.Key) && string(h.Val) == string(want.e.Val) {
				found = true
				break
			}
		}
		if !found {
			return fmt.Errorf("%s nftables: %s element for %s is missing from %s", b.family, what, want.e.Comment, want.set.Name)
		}
	}
	return nil
}

func (b *nfTables) CheckPortMappings(spec PortMapSpec) error {
	l := newLayout(b.family)
	return b.check(l, l.portElems(spec), "port mapping")
}

func (b *nfTables) CheckMasquerade(spec MasqSpec) error {
	l := newLayout(b.family)
	return b.check(l, l.masqElems(spec), "masquerade")
}

func (b *nfTables) AddForward(spec ForwardSpec) error {
	l := newLayout(b.family)
	if err := b.add(l, l.forwardElems(spec)); err != nil {
		return fmt.Errorf("%s nftables: forwarding rules for container %s: %w", b.family, spec.Owner.ContainerID, err)
	}
	return acceptInIPTables(b.family, spec.Bridge, b.opts)
}

// DelForward removes the attachment's elements; the per-network accept
// rules in iptables stay, as the bridge does.
func (b *nfTables) DelForward(spec ForwardSpec) error {
	l := newLayout(b.family)
	var elems []elem
	if spec.IP != nil {
		elems = l.forwardElems(spec)
	}
	err := b.del(l, spec.Owner, elems, []*nftables.Set{l.fwdMembers, l.fwdProtect, l.fwdIsolate, l.fwdNoICC})
	if err != nil {
		return fmt.Errorf("%s nftables: remove forwarding rules of container %s: %w", b.family, spec.Owner.ContainerID, err)
	}
	return nil
}

func (b *nfTables) CheckForward(spec ForwardSpec) error {
	l := newLayout(b.family)
	if err := b.check(l, l.forwardElems(spec), "forwarding"); err != nil {
		return err
	}
	return checkAcceptInIPTables(b.family, spec.Bridge, b.opts)
}
