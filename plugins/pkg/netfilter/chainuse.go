package netfilter

import (
	"encoding/binary"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ChainUse dumps the chains of the family, undecoded, and returns the
// use count of each chain of table (NFTA_CHAIN_USE: the kernel counts a
// chain's rules and the jumps to it there). One small dump tells whether
// a chain is there, whether a flush emptied it, and whether anything
// still jumps to it, without decoding a rule. The kernel dumps every
// table of the family; the others are skipped.
func (c NFTSession) ChainUse(family nftables.TableFamily, table string) (map[string]uint32, error) {
	data, err := netlink.MarshalAttributes([]netlink.Attribute{{Type: unix.NFTA_CHAIN_TABLE, Data: []byte(table + "\x00")}})
	if err != nil {
		return nil, err
	}
	replies, err := c.Dump(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETCHAIN)},
		Data:   append([]byte{byte(family), unix.NFNETLINK_V0, 0, 0}, data...),
	})
	if err != nil {
		return nil, err
	}
	use := map[string]uint32{}
	for _, m := range replies {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return nil, err
		}
		ad.ByteOrder = binary.BigEndian
		var in, name string
		var n uint32
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_CHAIN_TABLE:
				in = ad.String()
			case unix.NFTA_CHAIN_NAME:
				name = ad.String()
			case unix.NFTA_CHAIN_USE:
				n = ad.Uint32()
			}
		}
		if err := ad.Err(); err != nil {
			return nil, err
		}
		if in == table {
			use[name] = n
		}
	}
	return use, nil
}
