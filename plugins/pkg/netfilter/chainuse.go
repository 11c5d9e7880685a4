package netfilter

import (
	"encoding/binary"
	"errors"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ChainUse returns the use count of each of table's named chains that
// exists (NFTA_CHAIN_USE: the kernel counts a chain's rules and the jumps
// to it there). One small request per chain, nothing decoded but the
// count, tells whether a chain is there, whether a flush emptied it, and
// whether anything still jumps to it. Per chain rather than one dump: the
// kernel's chain dump does not filter by table, and a Kubernetes node's
// family holds kube-proxy's thousands of chains.
func (c NFTSession) ChainUse(family nftables.TableFamily, table string, chains ...string) (map[string]uint32, error) {
	use := make(map[string]uint32, len(chains))
	for _, chain := range chains {
		n, err := c.chainUse(family, table, chain)
		if errors.Is(err, unix.ENOENT) {
			continue // no such chain (or table)
		}
		if err != nil {
			return nil, err
		}
		use[chain] = n
	}
	return use, nil
}

func (c NFTSession) chainUse(family nftables.TableFamily, table, chain string) (uint32, error) {
	data, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_CHAIN_TABLE, Data: []byte(table + "\x00")},
		{Type: unix.NFTA_CHAIN_NAME, Data: []byte(chain + "\x00")},
	})
	if err != nil {
		return 0, err
	}
	replies, err := c.Raw(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETCHAIN)},
		Data:   append([]byte{byte(family), unix.NFNETLINK_V0, 0, 0}, data...),
	})
	if err != nil {
		return 0, err
	}
	for _, m := range replies {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return 0, err
		}
		ad.ByteOrder = binary.BigEndian
		for ad.Next() {
			if ad.Type() == unix.NFTA_CHAIN_USE {
				return ad.Uint32(), nil
			}
		}
		if err := ad.Err(); err != nil {
			return 0, err
		}
	}
	return 0, unix.ENOENT
}
