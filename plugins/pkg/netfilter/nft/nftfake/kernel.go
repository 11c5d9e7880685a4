// Package nftfake is a fake nf_tables kernel: the nftables backend, and
// anything built on it (the attachment flow, the node agent), runs on it
// without root, with google/nftables decoding what it sent.
package nftfake

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// Kernel answers nf_tables netlink as far as the nft backend speaks it,
// so the backend runs without root: it applies batches atomically (tables,
// chains, rule flushes and rules, sets, element adds and deletes, with the
// kernel's EEXIST for a key that holds other data and ENOENT for deleting
// one that is absent) and answers the dumps the backend reads back, with
// the messages it was sent. Rules and elements are decoded by
// google/nftables itself when it reads those dumps.
type Kernel struct {
	mu      sync.Mutex
	tables  map[string]*fakeTable // by family/name
	batches int                   // batches received
	refused int                   // batches refused
	handles uint64                // the last rule handle given
}

type fakeTable struct {
	family byte
	name   string
	chains map[string]*fakeChain
	sets   map[string]*fakeSet
	order  []string // chains in the order they were made
}

type fakeChain struct {
	msg   netlink.Message
	rules []netlink.Message
}

type fakeSet struct {
	msg   netlink.Message
	elems map[string]fakeElem // by key . key end
	order []string
}

type fakeElem struct {
	val []byte
	raw []byte // the NFTA_LIST_ELEM payload as sent
}

// New is an empty kernel: no table.
func New() *Kernel { return &Kernel{tables: map[string]*fakeTable{}} }

// Dial is a netfilter.NFTDial over the fake.
func (k *Kernel) Dial() (netfilter.NFTSession, func(error), error) {
	c, err := nftables.New(nftables.WithTestDial(k.handle))
	if err != nil {
		return netfilter.NFTSession{}, nil, err
	}
	return netfilter.NFTSession{Conn: c, Known: map[any]bool{}, Raw: k.raw}, func(error) {}, nil
}

// raw answers a raw request as the kernel's socket does: the replies
// without a dump's closing Done, an error reply as its errno.
func (k *Kernel) raw(req netlink.Message) ([]netlink.Message, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []netlink.Message
	for _, m := range k.get(req) {
		switch m.Header.Type {
		case netlink.Done:
		case netlink.Error:
			if errno := unix.Errno(-int32(binary.NativeEndian.Uint32(m.Data))); errno != 0 {
				return nil, errno
			}
		default:
			out = append(out, m)
		}
	}
	return out, nil
}

func msgType(m netlink.Message) uint16 { return uint16(m.Header.Type) & 0xff }

func attrs(m netlink.Message) map[uint16][]byte {
	out := map[uint16][]byte{}
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		return out
	}
	for ad.Next() {
		out[ad.Type()] = ad.Bytes()
	}
	return out
}

func str(b []byte) string { return strings.TrimRight(string(b), "\x00") }

func ack() []netlink.Message {
	return []netlink.Message{{Header: netlink.Header{Type: netlink.Error}, Data: make([]byte, 20)}}
}

func errMsg(req netlink.Message, errno unix.Errno) []netlink.Message {
	data := make([]byte, 20)
	binary.NativeEndian.PutUint32(data, uint32(-int32(errno)))
	return []netlink.Message{{Header: netlink.Header{Type: netlink.Error, Sequence: req.Header.Sequence}, Data: data}}
}

// handle is the nltest.Func: requests in, replies out; nil asks for the
// next reply, an ack.
func (k *Kernel) handle(req []netlink.Message) ([]netlink.Message, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(req) == 0 {
		return ack(), nil
	}
	if req[0].Header.Type == netlink.HeaderType(unix.NFNL_MSG_BATCH_BEGIN) {
		return k.batch(req[1 : len(req)-1]), nil
	}
	return k.get(req[0]), nil
}

// batch applies msgs to a copy of the state and keeps it only if every
// message applies; the reply is the first error, or nothing (each
// message's ack is then read as asked).
func (k *Kernel) batch(msgs []netlink.Message) []netlink.Message {
	k.batches++
	next := k.clone()
	for _, m := range msgs {
		if errno := next.apply(m); errno != 0 {
			k.refused++
			return errMsg(m, errno)
		}
	}
	k.tables, k.handles = next.tables, next.handles
	return nil
}

func (k *Kernel) table(family byte, name string) *fakeTable {
	return k.tables[fmt.Sprintf("%d/%s", family, name)]
}

func (k *Kernel) apply(m netlink.Message) unix.Errno {
	a, fam := attrs(m), m.Data[0]
	switch msgType(m) {
	case unix.NFT_MSG_NEWTABLE:
		name := str(a[unix.NFTA_TABLE_NAME])
		if k.table(fam, name) == nil {
			k.tables[fmt.Sprintf("%d/%s", fam, name)] = &fakeTable{family: fam, name: name, chains: map[string]*fakeChain{}, sets: map[string]*fakeSet{}}
		}
	case unix.NFT_MSG_NEWCHAIN:
		t := k.table(fam, str(a[unix.NFTA_CHAIN_TABLE]))
		if t == nil {
			return unix.ENOENT
		}
		name := str(a[unix.NFTA_CHAIN_NAME])
		if t.chains[name] == nil {
			t.chains[name] = &fakeChain{msg: m}
			t.order = append(t.order, name)
		}
	case unix.NFT_MSG_DELRULE: // one rule by its handle, or a flush
		t := k.table(fam, str(a[unix.NFTA_RULE_TABLE]))
		if t == nil || t.chains[str(a[unix.NFTA_RULE_CHAIN])] == nil {
			return unix.ENOENT
		}
		ch := t.chains[str(a[unix.NFTA_RULE_CHAIN])]
		if a[unix.NFTA_RULE_HANDLE] == nil {
			ch.rules = nil
			break
		}
		i := slices.IndexFunc(ch.rules, func(r netlink.Message) bool {
			return string(attrs(r)[unix.NFTA_RULE_HANDLE]) == string(a[unix.NFTA_RULE_HANDLE])
		})
		if i < 0 {
			return unix.ENOENT
		}
		ch.rules = slices.Delete(slices.Clone(ch.rules), i, i+1)
	case unix.NFT_MSG_NEWRULE:
		t := k.table(fam, str(a[unix.NFTA_RULE_TABLE]))
		if t == nil || t.chains[str(a[unix.NFTA_RULE_CHAIN])] == nil {
			return unix.ENOENT
		}
		ch := t.chains[str(a[unix.NFTA_RULE_CHAIN])]
		// The kernel's handle, unique in the table, as its dump shows it.
		k.handles++
		m.Data = append(slices.Clone(m.Data), marshal(netlink.Attribute{Type: unix.NFTA_RULE_HANDLE,
			Data: binary.BigEndian.AppendUint64(nil, k.handles)})...)
		ch.rules = append(ch.rules, m)
	case unix.NFT_MSG_DELCHAIN:
		// Its rules go with it, unless something still jumps to it.
		t := k.table(fam, str(a[unix.NFTA_CHAIN_TABLE]))
		name := str(a[unix.NFTA_CHAIN_NAME])
		if t == nil || t.chains[name] == nil {
			return unix.ENOENT
		}
		if t.refersTo(name, name) {
			return unix.EBUSY
		}
		delete(t.chains, name)
		t.order = without(t.order, name)
	case unix.NFT_MSG_DELSET:
		t := k.table(fam, str(a[unix.NFTA_SET_TABLE]))
		name := str(a[unix.NFTA_SET_NAME])
		if t == nil || t.sets[name] == nil {
			return unix.ENOENT
		}
		if t.refersTo(name, "") {
			return unix.EBUSY
		}
		delete(t.sets, name)
	case unix.NFT_MSG_NEWSET:
		t := k.table(fam, str(a[unix.NFTA_SET_TABLE]))
		if t == nil {
			return unix.ENOENT
		}
		if name := str(a[unix.NFTA_SET_NAME]); t.sets[name] == nil {
			t.sets[name] = &fakeSet{msg: m, elems: map[string]fakeElem{}}
		}
	case unix.NFT_MSG_NEWSETELEM, unix.NFT_MSG_DELSETELEM:
		t := k.table(fam, str(a[unix.NFTA_SET_ELEM_LIST_TABLE]))
		if t == nil || t.sets[str(a[unix.NFTA_SET_ELEM_LIST_SET])] == nil {
			return unix.ENOENT
		}
		s := t.sets[str(a[unix.NFTA_SET_ELEM_LIST_SET])]
		ad, err := netlink.NewAttributeDecoder(a[unix.NFTA_SET_ELEM_LIST_ELEMENTS])
		if err != nil {
			return unix.EINVAL
		}
		for ad.Next() {
			raw := ad.Bytes()
			key, val := elemKey(raw)
			_, have := s.elems[key]
			switch {
			case msgType(m) == unix.NFT_MSG_DELSETELEM && !have:
				return unix.ENOENT
			case msgType(m) == unix.NFT_MSG_DELSETELEM:
				delete(s.elems, key)
				s.order = without(s.order, key)
			case have && string(s.elems[key].val) != string(val):
				return unix.EEXIST
			case !have:
				s.elems[key] = fakeElem{val: val, raw: raw}
				s.order = append(s.order, key)
			}
		}
	default:
		return unix.EOPNOTSUPP
	}
	return 0
}

// refersTo reports whether a rule (outside chain skip) or an element's
// data names name: a lookup of a set, a jump to a chain. The fake knows
// names only as strings in the messages, which is enough for its tests.
func (t *fakeTable) refersTo(name, skip string) bool {
	for chain, ch := range t.chains {
		for _, r := range ch.rules {
			if chain != skip && names(r.Data, name) {
				return true
			}
		}
	}
	for _, s := range t.sets {
		for _, e := range s.elems {
			if names(e.val, name) {
				return true
			}
		}
	}
	return false
}

// names reports whether b holds name as a whole string: not the tail of
// a longer one (guard in fwd_guard).
func names(b []byte, name string) bool {
	s, needle := string(b), name+"\x00"
	for from := 0; ; {
		i := strings.Index(s[from:], needle)
		if i < 0 {
			return false
		}
		if at := from + i; at == 0 || !isNameByte(s[at-1]) {
			return true
		}
		from += i + 1
	}
}

func isNameByte(c byte) bool {
	return c == '_' || c == '-' || c == '.' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// elemKey is an element's key (and key end, and interval end flag), and
// its data as sent (a value or a verdict).
func elemKey(raw []byte) (string, []byte) {
	ad, err := netlink.NewAttributeDecoder(raw)
	if err != nil {
		return "", nil
	}
	var key, end, val []byte
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_SET_ELEM_KEY:
			key = value(ad.Bytes())
		case nftables.NFTA_SET_ELEM_KEY_END:
			end = value(ad.Bytes())
		case unix.NFTA_SET_ELEM_DATA:
			val = ad.Bytes()
		case unix.NFTA_SET_ELEM_FLAGS:
			if binary.BigEndian.Uint32(ad.Bytes())&unix.NFT_SET_ELEM_INTERVAL_END != 0 {
				end = append(end, "/end"...)
			}
		}
	}
	return string(key) + "\x00" + string(end), val
}

// value is the NFTA_DATA_VALUE inside a nested data attribute.
func value(b []byte) []byte {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil
	}
	for ad.Next() {
		if ad.Type() == unix.NFTA_DATA_VALUE {
			return ad.Bytes()
		}
	}
	return nil
}

func without(list []string, s string) []string {
	for i, v := range list {
		if v == s {
			return append(list[:i:i], list[i+1:]...)
		}
	}
	return list
}

// get answers one read: a table by name, or a dump of rules, sets or
// elements.
func (k *Kernel) get(req netlink.Message) []netlink.Message {
	a, fam := attrs(req), req.Data[0]
	reply := func(typ uint16, data ...[]byte) []netlink.Message {
		var out []netlink.Message
		for _, d := range data {
			out = append(out, netlink.Message{Header: netlink.Header{
				Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | typ), Flags: netlink.Multi,
				Sequence: req.Header.Sequence, PID: req.Header.PID}, Data: d})
		}
		return append(out, netlink.Message{Header: netlink.Header{Type: netlink.Done, Flags: netlink.Multi,
			Sequence: req.Header.Sequence, PID: req.Header.PID}})
	}
	switch msgType(req) {
	case unix.NFT_MSG_GETTABLE:
		t := k.table(fam, str(a[unix.NFTA_TABLE_NAME]))
		if t == nil {
			return errMsg(req, unix.ENOENT)
		}
		data := append([]byte{fam, 0, 0, 0}, marshal(netlink.Attribute{Type: unix.NFTA_TABLE_NAME, Data: []byte(t.name + "\x00")})...)
		return []netlink.Message{{Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWTABLE),
			Sequence: req.Header.Sequence, PID: req.Header.PID}, Data: data}}
	case unix.NFT_MSG_GETRULE:
		t := k.table(fam, str(a[unix.NFTA_RULE_TABLE]))
		if t == nil || (a[unix.NFTA_RULE_CHAIN] != nil && t.chains[str(a[unix.NFTA_RULE_CHAIN])] == nil) {
			return errMsg(req, unix.ENOENT)
		}
		var data [][]byte
		for _, name := range t.order { // no chain given: the whole table's rules
			if a[unix.NFTA_RULE_CHAIN] == nil || name == str(a[unix.NFTA_RULE_CHAIN]) {
				for _, r := range t.chains[name].rules {
					data = append(data, r.Data)
				}
			}
		}
		return reply(unix.NFT_MSG_NEWRULE, data...)
	case unix.NFT_MSG_GETCHAIN:
		var data [][]byte
		for _, key := range sortedKeys(k.tables) {
			t := k.tables[key]
			if t.family != fam || (a[unix.NFTA_CHAIN_TABLE] != nil && t.name != str(a[unix.NFTA_CHAIN_TABLE])) {
				continue
			}
			for _, name := range t.order {
				if a[unix.NFTA_CHAIN_NAME] == nil || name == str(a[unix.NFTA_CHAIN_NAME]) {
					data = append(data, t.withUse(name))
				}
			}
		}
		if a[unix.NFTA_CHAIN_NAME] != nil {
			if len(data) == 0 {
				return errMsg(req, unix.ENOENT)
			}
			return []netlink.Message{{Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWCHAIN),
				Sequence: req.Header.Sequence, PID: req.Header.PID}, Data: data[0]}}
		}
		return reply(unix.NFT_MSG_NEWCHAIN, data...)
	case unix.NFT_MSG_GETSET:
		t := k.table(fam, str(a[unix.NFTA_SET_TABLE]))
		if t == nil {
			return errMsg(req, unix.ENOENT)
		}
		var data [][]byte
		for _, name := range sortedKeys(t.sets) {
			data = append(data, t.sets[name].msg.Data)
		}
		return reply(unix.NFT_MSG_NEWSET, data...)
	case unix.NFT_MSG_GETSETELEM:
		t := k.table(fam, str(a[unix.NFTA_SET_TABLE]))
		if t == nil || t.sets[str(a[unix.NFTA_SET_NAME])] == nil {
			return errMsg(req, unix.ENOENT)
		}
		s := t.sets[str(a[unix.NFTA_SET_NAME])]
		if len(s.order) == 0 {
			return reply(unix.NFT_MSG_NEWSETELEM)
		}
		var list []netlink.Attribute
		for _, key := range s.order {
			list = append(list, netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: s.elems[key].raw})
		}
		data := append([]byte{fam, 0, 0, 0}, marshal(
			netlink.Attribute{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: []byte(t.name + "\x00")},
			netlink.Attribute{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: []byte(str(a[unix.NFTA_SET_NAME]) + "\x00")},
			netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_SET_ELEM_LIST_ELEMENTS, Data: marshal(list...)})...)
		return reply(unix.NFT_MSG_NEWSETELEM, data)
	}
	return errMsg(req, unix.EOPNOTSUPP)
}

func marshal(as ...netlink.Attribute) []byte {
	b, err := netlink.MarshalAttributes(as)
	if err != nil {
		panic(err)
	}
	return b
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Batches is how many batches the kernel received, Refused how many of
// them it refused (applying none of it).
func (k *Kernel) Batches() int { k.mu.Lock(); defer k.mu.Unlock(); return k.batches }

// Refused: see Batches.
func (k *Kernel) Refused() int { k.mu.Lock(); defer k.mu.Unlock(); return k.refused }

// clone copies the state deeply enough that a refused batch leaves the
// original as it was.
func (k *Kernel) clone() *Kernel {
	c := &Kernel{tables: map[string]*fakeTable{}, handles: k.handles}
	for key, t := range k.tables {
		nt := &fakeTable{family: t.family, name: t.name, chains: map[string]*fakeChain{}, sets: map[string]*fakeSet{}, order: append([]string{}, t.order...)}
		for n, ch := range t.chains {
			nt.chains[n] = &fakeChain{msg: ch.msg, rules: append([]netlink.Message{}, ch.rules...)}
		}
		for n, s := range t.sets {
			ns := &fakeSet{msg: s.msg, elems: map[string]fakeElem{}, order: append([]string{}, s.order...)}
			for e, v := range s.elems {
				ns.elems[e] = v
			}
			nt.sets[n] = ns
		}
		c.tables[key] = nt
	}
	return c
}

// DropFirstElement removes the first element of a set, behind the
// backend's back, as a partial flush would: false when there is none.
func (k *Kernel) DropFirstElement(family byte, table, set string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	t := k.table(family, table)
	if t == nil || t.sets[set] == nil || len(t.sets[set].order) == 0 {
		return false
	}
	s := t.sets[set]
	delete(s.elems, s.order[0])
	s.order = s.order[1:]
	return true
}
