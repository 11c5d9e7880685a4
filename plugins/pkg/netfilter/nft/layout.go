package nft

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
//	  set guard_protect { type ipv4_addr }           container addresses of networks with direct-routing protection
//	  chain guard { type filter hook prerouting priority mangle; jump guard_rules }  only while an element needs it (hooks.go)
//	  chain guard_rules {                                                   after conntrack, before any DNAT
//	    ct state established,related accept                                 a connection's later packets skip the rest
//	    iifname != "lo" ip daddr 127.0.0.0/8 drop    (ip6: ::1)             loopback from outside: see loopbackDrop
//	    ip daddr @guard_protect jump guard_protected                        one lookup for every other destination
//	    (the source drops, below)
//	  }
//	  set guard_trusted { type ifname . ipv4_addr }  trustedHostInterfaces: direct routing allowed from them
//	  set guard_open    { type ipv4_addr . inet_proto . inet_service }   gatewayMode routed: published container ports
//	  set guard_icmp    { type ipv4_addr }           ... and the containers ICMP reaches
//	  chain guard_protected {
//	    ip daddr . meta l4proto . th dport @guard_open accept
//	    ip daddr @guard_icmp meta l4proto icmp accept
//	    iifname . ip daddr != @guard_trusted
//	        ip daddr . iifname != @fwd_members drop                          direct routing from outside the bridge,
//	  }                                                                     whatever its conntrack state
//	  map src_ports     { type inet_proto . inet_service : verdict }      published ports with a source allowlist,
//	    (guard, last rule) meta l4proto . th dport @src_ports              and the chain of their list
//	        fib daddr type local meta l4proto . th dport vmap @src_ports
//	  set srcl_<hash>   { type ipv4_addr; flags interval }                 one per distinct list, shared by its ports
//	  chain srcl_<hash> { ip saddr != @srcl_<hash> drop }                 a source the list refuses
//	  set src_limited, src_allowed                                         no longer written (src_ports took their place); DEL empties them
//	  chain guard_out { type filter hook output priority mangle; jump guard_out_rules }  as guard
//	  chain guard_out_rules {                                               the same for the host's own connections
//	    ct state established,related accept; (the source drop) }
//	  chain prerouting  { type nat hook prerouting priority dstnat; fib daddr type local jump hostports }
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
//	  set fwd_protect  { type ipv4_addr . ifname }  no longer written (guard_protect took its place); DEL empties it
//	  set fwd_isolate  { type ipv4_addr . ifname }  ... of networks isolated from each other
//	  set fwd_noicc    { type ipv4_addr . ifname }  ... of networks without container-to-container traffic
//	  set fwd_guard    { type nf_proto }            the family, when the bridge turned its forwarding on
//	  chain forward { type filter hook forward priority filter; jump forward_rules }  as guard
//	  chain forward_rules {
//	    ct state established,related accept                                  a connection's later packets skip the lookups
//	    ct status dnat accept                                                published ports; no entry: the drops below
//	    ip saddr . iifname @fwd_isolate ip daddr . oifname @fwd_isolate
//	        ip daddr . iifname != @fwd_members drop                             another isolated network
//	    ip saddr . iifname @fwd_isolate_out ip daddr . oifname @fwd_isolate
//	        ip daddr . iifname != @fwd_members drop                             ... from a routed network
//	    ip saddr . iifname @fwd_noicc ip daddr . oifname @fwd_noicc
//	        ip daddr . iifname @fwd_members drop                                the same bridge, icc off
//	    meta nfproto @fwd_guard ip daddr != 224.0.0.0/4 ip saddr != 169.254.0.0/16
//	        ip saddr . iifname != @fwd_members
//	        ip daddr . oifname != @fwd_members drop                             no container network takes part
//	  }
//	}
//
// The guard chain's drops come before every DNAT and every FORWARD rule of
// any table, so nothing another firewall accepts earlier can undo them
// (an accept ends only its own chain; a drop is final). It runs after
// conntrack, not at raw priority as Docker's drop does, so that a reply to
// a connection the container opened unmasqueraded (ipMasq off,
// nonMasqueradeCIDRs) is not taken for direct routing.
//
// The forward chain's one accept ends this chain for a connection's later
// packets; it cannot override a drop in another table on the same hook
// (iptables' FORWARD policy, for one), nor could any accept here. Where an
// iptables filter table exists, a few per-network accept rules go there too
// (see ipt/forward.go).
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
	"net"
	"slices"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

const (
	// Table is the name of the backend's table in each family.
	Table               = "dnet"
	SetHostPorts        = "hostports"
	SetHostPortsBound   = "hostports_bound"
	SetHairpinIfs       = "hairpin_ifs"
	SetMasqAll          = "masq_all"
	SetMasqIPs          = "masq_ips"
	SetMasqLocal        = "masq_local"
	SetMasqExcept       = "masq_except"
	SetFwdMembers       = "fwd_members"
	SetFwdProtect       = "fwd_protect"
	SetFwdIsolate       = "fwd_isolate"
	SetFwdIsolateOut    = "fwd_isolate_out"
	SetFwdNoICC         = "fwd_noicc"
	SetGuardProtect     = "guard_protect"
	SetGuardTrusted     = "guard_trusted"
	SetSrcLimited       = "src_limited"
	SetSrcAllowed       = "src_allowed"
	SetFwdGuard         = "fwd_guard"
	SetSrcPorts         = "src_ports"
	SetSrcPortsBound    = "src_ports_bound"
	SetGuardOpen        = "guard_open"
	SetGuardICMP        = "guard_icmp"
	ChainGuard          = "guard"
	ChainGuardOut       = "guard_out"
	ChainGuardProtected = "guard_protected"
	ChainForward        = "forward"
	ChainGuardRules     = "guard_rules"
	ChainGuardOutRules  = "guard_out_rules"
	ChainForwardRules   = "forward_rules"
	ChainPrerouting     = "prerouting"
	ChainOutput         = "output"
	ChainHostPorts      = "hostports"
	ChainPostrouting    = "postrouting"
	ipsDstNAT           = 0x20 // IPS_DST_NAT: conntrack status bit of a DNATed flow
	markBit             = netfilter.DefaultMarkBit
)

// layout is the table, its sets and chains for one family.
type layout struct {
	f                                                               netfilter.Family
	table                                                           *nftables.Table
	hostPorts, hostPortsBound, hairpin, masqAll, masqIPs, masqLocal *nftables.Set
	masqExcept                                                      *nftables.Set
	fwdMembers, fwdProtect, fwdIsolate, fwdNoICC, fwdIsolateOut     *nftables.Set
	guardProtect, guardTrusted, srcLimited, srcAllowed, fwdGuard    *nftables.Set
	srcPorts, srcPortsBound, guardOpen, guardICMP                   *nftables.Set
	addrType                                                        nftables.SetDatatype
	addrLen                                                         uint32 // bytes of an address
}

func newLayout(f netfilter.Family) *layout {
	l := &layout{f: f, addrType: nftables.TypeIPAddr, addrLen: 4}
	tf := nftables.TableFamilyIPv4
	if f == netfilter.IPv6 {
		l.addrType, l.addrLen, tf = nftables.TypeIP6Addr, 16, nftables.TableFamilyIPv6
	}
	l.table = &nftables.Table{Name: Table, Family: tf}
	target := nftables.MustConcatSetType(l.addrType, nftables.TypeInetService)
	l.hostPorts = &nftables.Set{Table: l.table, Name: SetHostPorts, IsMap: true, Concatenation: true,
		KeyType: nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService), DataType: target}
	l.hostPortsBound = &nftables.Set{Table: l.table, Name: SetHostPortsBound, IsMap: true, Concatenation: true,
		KeyType: nftables.MustConcatSetType(l.addrType, nftables.TypeInetProto, nftables.TypeInetService), DataType: target}
	// A string key: host byte order, or nft prints the name byte-swapped.
	l.hairpin = &nftables.Set{Table: l.table, Name: SetHairpinIfs, KeyType: nftables.TypeIFName, KeyByteOrder: binaryutil.NativeEndian}
	l.masqAll = &nftables.Set{Table: l.table, Name: SetMasqAll, KeyType: l.addrType}
	l.masqIPs = &nftables.Set{Table: l.table, Name: SetMasqIPs, KeyType: l.addrType}
	addrIf := func(name string) *nftables.Set {
		return &nftables.Set{Table: l.table, Name: name, Concatenation: true,
			KeyType: nftables.MustConcatSetType(l.addrType, nftables.TypeIFName)}
	}
	l.masqLocal = addrIf(SetMasqLocal)
	// Source address . destination range (a pipapo set, kernel 5.6 and later).
	l.masqExcept = &nftables.Set{Table: l.table, Name: SetMasqExcept, Concatenation: true, Interval: true,
		KeyType: nftables.MustConcatSetType(l.addrType, l.addrType)}
	l.fwdMembers, l.fwdProtect = addrIf(SetFwdMembers), addrIf(SetFwdProtect)
	l.fwdIsolate, l.fwdNoICC, l.fwdIsolateOut = addrIf(SetFwdIsolate), addrIf(SetFwdNoICC), addrIf(SetFwdIsolateOut)
	l.guardProtect = &nftables.Set{Table: l.table, Name: SetGuardProtect, KeyType: l.addrType}
	l.guardTrusted = &nftables.Set{Table: l.table, Name: SetGuardTrusted, Concatenation: true,
		KeyType: nftables.MustConcatSetType(nftables.TypeIFName, l.addrType)}
	l.srcLimited = &nftables.Set{Table: l.table, Name: SetSrcLimited, Concatenation: true,
		KeyType: nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)}
	l.srcAllowed = &nftables.Set{Table: l.table, Name: SetSrcAllowed, Concatenation: true, Interval: true,
		KeyType: nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService, l.addrType)}
	l.fwdGuard = &nftables.Set{Table: l.table, Name: SetFwdGuard, KeyType: nftables.TypeNFProto}
	l.srcPorts = &nftables.Set{Table: l.table, Name: SetSrcPorts, IsMap: true, Concatenation: true,
		KeyType: nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService), DataType: nftables.TypeVerdict}
	l.srcPortsBound = &nftables.Set{Table: l.table, Name: SetSrcPortsBound, IsMap: true, Concatenation: true,
		KeyType: nftables.MustConcatSetType(l.addrType, nftables.TypeInetProto, nftables.TypeInetService), DataType: nftables.TypeVerdict}
	l.guardOpen = &nftables.Set{Table: l.table, Name: SetGuardOpen, Concatenation: true,
		KeyType: nftables.MustConcatSetType(l.addrType, nftables.TypeInetProto, nftables.TypeInetService)}
	l.guardICMP = &nftables.Set{Table: l.table, Name: SetGuardICMP, KeyType: l.addrType}
	return l
}

func (l *layout) sets() []*nftables.Set {
	return []*nftables.Set{l.hostPorts, l.hostPortsBound, l.hairpin, l.masqAll, l.masqIPs, l.masqLocal, l.masqExcept,
		l.fwdMembers, l.fwdProtect, l.fwdIsolate, l.fwdNoICC, l.guardProtect, l.guardTrusted, l.srcLimited, l.srcAllowed,
		l.fwdGuard, l.srcPorts, l.srcPortsBound, l.guardOpen, l.guardICMP, l.fwdIsolateOut}
}

// 32-bit register n (NFT_REG32_00 is 8); register 1 is the same memory as reg32(0).
func reg32(n uint32) uint32 { return 8 + n }

func (l *layout) saddr(reg uint32) expr.Any {
	off := uint32(12)
	if l.f == netfilter.IPv6 {
		off = 8
	}
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: l.addrLen}
}

func (l *layout) daddr(reg uint32) expr.Any {
	off := uint32(16)
	if l.f == netfilter.IPv6 {
		off = 24
	}
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: l.addrLen}
}

// icmpProto is the family's ICMP protocol number.
func (l *layout) icmpProto() byte {
	if l.f == netfilter.IPv6 {
		return unix.IPPROTO_ICMPV6
	}
	return unix.IPPROTO_ICMP
}

func (l *layout) nfproto() uint32 {
	if l.f == netfilter.IPv6 {
		return unix.NFPROTO_IPV6
	}
	return unix.NFPROTO_IPV4
}

// ctDNAT matches a connection a DNAT rule rewrote; a packet without a
// connection (invalid, untracked) never matches.
func ctDNAT() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

func fibLocalJump() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
		&expr.Verdict{Kind: expr.VerdictJump, Chain: ChainHostPorts},
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
	mark := uint32(1) << markBit
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
	if l.f == netfilter.IPv4 {
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
		ChainGuardRules:     append(l.guardRules(), l.sourceDrops()...),
		ChainGuardProtected: l.guardProtectedRules(),
		ChainGuardOutRules:  append([][]expr.Any{established()}, l.sourceDrops()...),
		ChainPrerouting:     {fibLocalJump()},
		ChainOutput:         {fibLocalJump()},
		ChainHostPorts:      hostports,
		ChainPostrouting:    post,
		ChainForwardRules:   l.forwardRules(),
	}
}

// loopbackDrop drops what arrives from outside addressed to 127.0.0.0/8
// (::1): without it, a neighbour routing such packets here would reach a
// port published on 127.0.0.1, and a container (its bridge has
// route_localnet for that mapping) the host's loopback services. The
// host's own packets to its loopback come in through lo.
func (l *layout) loopbackDrop() []expr.Any {
	drop := &expr.Verdict{Kind: expr.VerdictDrop}
	notLo := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname("lo")},
	}
	if l.f == netfilter.IPv4 {
		return append(notLo, l.daddr(1),
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 0, 0, 0}, Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{127, 0, 0, 0}}, drop)
	}
	return append(notLo, l.daddr(1), &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: net.IPv6loopback}, drop)
}

// guardRules are the guard chain's rules, in order: drops before any DNAT
// and any FORWARD rule, which no accept elsewhere can undo. A packet that
// is not a connection's later one (every packet of a UDP flow that is
// never answered, vxlan's among them) walks the chain to its end, so the
// common case costs three lookups and no route lookup: a destination
// that is no protected container's skips guard_protected's three.
func (l *layout) guardRules() [][]expr.Any {
	return [][]expr.Any{
		established(),
		l.loopbackDrop(),
		{l.daddr(1), &expr.Lookup{SourceRegister: 1, SetName: l.guardProtect.Name, SetID: l.guardProtect.ID},
			&expr.Verdict{Kind: expr.VerdictJump, Chain: ChainGuardProtected}},
	}
}

// guardProtectedRules decide for a packet to a container address of a
// network with direct-routing protection: gatewayMode routed opens its
// published ports and ICMP; anything else from outside the bridge is
// dropped. (guard_open and guard_icmp hold protected addresses only.)
func (l *layout) guardProtectedRules() [][]expr.Any {
	words := l.addrLen / 4
	accept := &expr.Verdict{Kind: expr.VerdictAccept}
	return [][]expr.Any{
		// gatewayMode routed: the published container ports, and ICMP.
		{l.daddr(1), &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg32(words)},
			&expr.Payload{DestRegister: reg32(words + 1), Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 1, SetName: l.guardOpen.Name, SetID: l.guardOpen.ID}, accept},
		{l.daddr(1), &expr.Lookup{SourceRegister: 1, SetName: l.guardICMP.Name, SetID: l.guardICMP.ID},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{l.icmpProto()}}, accept},
		// Whatever conntrack made of it (new, invalid, untracked, no
		// entry): only a connection's later packets, accepted first,
		// pass, so a bare FIN or a NOTRACK'd SYN is dropped too.
		{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			l.daddr(reg32(4)),
			&expr.Lookup{SourceRegister: 1, SetName: l.guardTrusted.Name, SetID: l.guardTrusted.ID, Invert: true},
			l.daddr(1),
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg32(words)},
			&expr.Lookup{SourceRegister: 1, SetName: l.fwdMembers.Name, SetID: l.fwdMembers.ID, Invert: true},
			&expr.Verdict{Kind: expr.VerdictDrop},
		},
	}
}

// sourceDrops send a connection to a published port whose mapping limits
// its sources to the chain of its list, which drops a source outside the
// list: a map lookup, then one lookup in the list's own interval set,
// whatever the number of mappings or of networks in the list. A port
// published on one host address is keyed by that address too
// (src_ports_bound), so two containers publishing one port on two
// addresses each own their element, and one's DEL leaves the other's;
// a port on every address is keyed by protocol and port (src_ports),
// which the port ledger gives to one owner at a time. Before any DNAT, on
// prerouting (from outside, hairpin) and output (from the host).
func (l *layout) sourceDrops() [][]expr.Any {
	words := l.addrLen / 4
	return [][]expr.Any{
		{
			l.daddr(1),
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg32(words)},
			&expr.Payload{DestRegister: reg32(words + 1), Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 1, DestRegister: 0, IsDestRegSet: true, SetName: l.srcPortsBound.Name, SetID: l.srcPortsBound.ID},
		},
		{
			// The port first: a hash lookup, where the route lookup that
			// follows would cost every packet to a port with no list.
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Payload{DestRegister: reg32(1), Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 1, SetName: l.srcPorts.Name, SetID: l.srcPorts.ID},
			&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Payload{DestRegister: reg32(1), Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Lookup{SourceRegister: 1, DestRegister: 0, IsDestRegSet: true, SetName: l.srcPorts.Name, SetID: l.srcPorts.ID},
		},
	}
}

// established accepts a connection's later packets: every drop after it
// decides on a connection's first packet, and the rest of it skips the
// set lookups, which cost every packet otherwise.
func established() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
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
	return [][]expr.Any{
		established(),
		// A DNATed connection (a published port) passes every drop below;
		// what conntrack has no entry for (invalid, untracked) meets them
		// all, so a bare FIN finds no way past isolation.
		append(ctDNAT(), &expr.Verdict{Kind: expr.VerdictAccept}),
		rule(in(l.saddr, expr.MetaKeyIIFNAME, l.fwdIsolate, false),
			in(l.daddr, expr.MetaKeyOIFNAME, l.fwdIsolate, false),
			in(l.daddr, expr.MetaKeyIIFNAME, l.fwdMembers, true)),
		rule(in(l.saddr, expr.MetaKeyIIFNAME, l.fwdIsolateOut, false),
			in(l.daddr, expr.MetaKeyOIFNAME, l.fwdIsolate, false),
			in(l.daddr, expr.MetaKeyIIFNAME, l.fwdMembers, true)),
		rule(in(l.saddr, expr.MetaKeyIIFNAME, l.fwdNoICC, false),
			in(l.daddr, expr.MetaKeyOIFNAME, l.fwdNoICC, false),
			in(l.daddr, expr.MetaKeyIIFNAME, l.fwdMembers, false)),
		// The set is empty, and the rule ends at its first lookup, unless
		// the bridge turned forwarding on (ForwardSpec.Guard).
		// Link-local sources and multicast destinations are never routed:
		// such a packet here was bridged (br_netfilter passes bridged
		// frames through this hook), neighbour discovery between two
		// containers of a bridge, say, and is not the host forwarding.
		rule([]expr.Any{&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Lookup{SourceRegister: 1, SetName: l.fwdGuard.Name, SetID: l.fwdGuard.ID}},
			l.notMulticast(), l.notLinkLocalSource(),
			in(l.saddr, expr.MetaKeyIIFNAME, l.fwdMembers, true),
			in(l.daddr, expr.MetaKeyOIFNAME, l.fwdMembers, true)),
	}
}

// guardElem is the fwd_guard element that turns the forward chain's last
// drop on: the host's, so tagged as such and removed by no attachment's DEL.
func (l *layout) guardElem() elem {
	return elem{l.fwdGuard, nftables.SetElement{Key: []byte{byte(l.nfproto())}, Comment: netfilter.CommentForwardGuard}}
}

// notLinkLocalSource matches a source outside 169.254.0.0/16 (fe80::/10).
func (l *layout) notLinkLocalSource() []expr.Any {
	if l.f == netfilter.IPv4 {
		return []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 2},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{169, 254}},
		}
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 2},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 2, Mask: []byte{0xff, 0xc0}, Xor: []byte{0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0xfe, 0x80}},
	}
}

func (l *layout) notMulticast() []expr.Any {
	if l.f == netfilter.IPv4 {
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

// baseChainNames are the base chains' names, in baseChains' order.
var baseChainNames = sync.OnceValue(func() []string {
	var names []string
	for _, ch := range baseChains() {
		names = append(names, ch.name)
	}
	return names
})

func baseChains() []chainSpec {
	return []chainSpec{
		{ChainGuardRules, "", nil, nil},
		{ChainGuardProtected, "", nil, nil}, // after the chain jumping to it: missing names that one
		{ChainGuardOutRules, "", nil, nil},
		{ChainPrerouting, nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest},
		{ChainOutput, nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest},
		{ChainHostPorts, "", nil, nil},
		{ChainPostrouting, nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource},
		{ChainForwardRules, "", nil, nil},
	}
}

// missing names the first chain of the base that the table lacks, or
// whose rules were flushed or deleted, or "" when it is complete: each
// base chain's use count from the kernel (its rules, and the jumps to
// it), independent of the number of attachments and of other tables. The
// sets need no dump of their own: every set an ADD writes is looked up
// by a rule of these chains (TestWrittenSetsAreLookedUp), and the kernel
// refuses to delete a set a rule refers to, so intact rules mean present
// sets; a set gone with its rules shows in their chain's count. A filter
// hook (hooks.go) is optional, but one that is there must hold its jump,
// and the other two must be there too; hooks is how many are there.
func (l *layout) missing(c netfilter.NFTSession) (what string, hooks int) {
	use, err := c.ChainUse(l.table.Family, l.table.Name, append(baseChainNames(), hookChainNames()...)...)
	if err != nil {
		return "chain " + baseChains()[0].name, 0
	}
	var present []string
	for _, h := range hookChains() {
		if _, ok := use[h.name]; ok {
			present = append(present, h.name)
		}
	}
	want := l.wantUse(present)
	// Hooked chains first: a flushed one also lowers the count of the
	// chain it jumped to, and it is the one to name.
	// One hook without the others: all three were made together, and
	// some element needs them.
	for _, h := range hookChains() {
		if got, ok := use[h.name]; (ok || len(present) > 0) && got != want[h.name] {
			return "chain " + h.name, len(present)
		}
	}
	for _, hooked := range []bool{true, false} {
		for _, ch := range baseChains() {
			if got, ok := use[ch.name]; (ch.hook != nil) == hooked && (!ok || got != want[ch.name]) {
				return "chain " + ch.name, len(present)
			}
		}
	}
	return "", len(present)
}

// wantUse is each chain's use count in an intact base with the filter
// hooks hooked present: its rules, and the rules that jump to it.
func (l *layout) wantUse(hooked []string) map[string]uint32 {
	want := map[string]uint32{}
	rules := l.rules()
	for _, h := range hookChains() {
		if slices.Contains(hooked, h.name) {
			rules[h.name] = [][]expr.Any{h.rule()}
		}
	}
	for chain, rules := range rules {
		want[chain] += uint32(len(rules))
		for _, r := range rules {
			for _, e := range r {
				if v, ok := e.(*expr.Verdict); ok && v.Chain != "" {
					want[v.Chain]++
				}
			}
		}
	}
	return want
}

// ensureBase queues the table, its sets, chains and rules into the batch,
// and the filter hooks when hooks. Chains are flushed before their rules
// are added, so it is idempotent and repairs a partly deleted table; set
// elements are kept.
func (l *layout) ensureBase(c *nftables.Conn, hooks bool) error {
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
	if hooks {
		l.ensureHooks(c)
	}
	return nil
}
