package nftfake

import (
	"encoding/binary"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// use is the chain's use count as the kernel dumps it (NFTA_CHAIN_USE):
// its rules, and the jumps and gotos to it, from rules and from verdict
// map elements.
func (t *fakeTable) use(name string) uint32 {
	n := uint32(len(t.chains[name].rules))
	for _, ch := range t.chains {
		for _, r := range ch.rules {
			for _, target := range ruleJumps(r.Data[4:]) {
				if target == name {
					n++
				}
			}
		}
	}
	for _, s := range t.sets {
		for _, e := range s.elems {
			if verdictChain(e.val) == name {
				n++
			}
		}
	}
	return n
}

// withUse is a chain's message as dumped: as it was sent, with its use count.
func (t *fakeTable) withUse(name string) []byte {
	use := make([]byte, 4)
	binary.BigEndian.PutUint32(use, t.use(name))
	return append(append([]byte(nil), t.chains[name].msg.Data...), marshal(netlink.Attribute{Type: unix.NFTA_CHAIN_USE, Data: use})...)
}

// ruleJumps are the chains a rule's immediate verdicts jump or go to.
func ruleJumps(rule []byte) []string {
	var out []string
	for _, list := range each(rule, unix.NFTA_RULE_EXPRESSIONS) {
		for _, e := range each(list, unix.NFTA_LIST_ELEM) {
			if str(first(e, unix.NFTA_EXPR_NAME)) != "immediate" {
				continue
			}
			data := first(first(e, unix.NFTA_EXPR_DATA), unix.NFTA_IMMEDIATE_DATA)
			if c := verdictChain(data); c != "" {
				out = append(out, c)
			}
		}
	}
	return out
}

// verdictChain is the chain of an NFTA_DATA_VERDICT's jump or goto, or "".
func verdictChain(data []byte) string {
	return str(first(first(data, unix.NFTA_DATA_VERDICT), unix.NFTA_VERDICT_CHAIN))
}

// each returns the payloads of the attributes of type typ in b.
func each(b []byte, typ uint16) [][]byte {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return nil
	}
	var out [][]byte
	for ad.Next() {
		if ad.Type() == typ {
			out = append(out, ad.Bytes())
		}
	}
	return out
}

func first(b []byte, typ uint16) []byte {
	if all := each(b, typ); len(all) > 0 {
		return all[0]
	}
	return nil
}
