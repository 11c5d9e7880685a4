package ipt

import (
	"encoding/binary"
	"strings"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// nftRuleComments dumps the rules of iptables-nft's chain and returns
// each one's comment (RuleComment's answer, "" for none), decoding
// nothing else: a per-ADD question that google/nftables would answer by
// decoding every expression of every rule.
func nftRuleComments(c netfilter.NFTSession, f netfilter.Family, table, chain string) ([]string, error) {
	data, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: []byte(table + "\x00")},
		{Type: unix.NFTA_RULE_CHAIN, Data: []byte(chain + "\x00")},
	})
	if err != nil {
		return nil, err
	}
	replies, err := c.Raw(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETRULE), Flags: netlink.Dump},
		Data:   append([]byte{byte(f.NFT()), unix.NFNETLINK_V0, 0, 0}, data...),
	})
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(replies))
	for _, m := range replies {
		if len(m.Data) < 4 {
			continue
		}
		comment, err := rawRuleComment(m.Data[4:])
		if err != nil {
			return nil, err
		}
		out = append(out, comment)
	}
	return out, nil
}

// rawRuleComment finds a rule's comment in its attributes: an xt comment
// match among its expressions, else the comment of its userdata.
func rawRuleComment(attrs []byte) (string, error) {
	ad, err := netlink.NewAttributeDecoder(attrs)
	if err != nil {
		return "", err
	}
	ad.ByteOrder = binary.BigEndian
	var match, user string
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_RULE_EXPRESSIONS:
			ad.Nested(func(list *netlink.AttributeDecoder) error {
				for list.Next() && match == "" {
					list.Nested(func(e *netlink.AttributeDecoder) error {
						match = xtComment(e)
						return nil
					})
				}
				return nil
			})
		case unix.NFTA_RULE_USERDATA:
			user = userdataComment(ad.Bytes())
		}
	}
	if err := ad.Err(); err != nil {
		return "", err
	}
	if match != "" {
		return match, nil
	}
	return user, nil
}

// xtComment is the text of an expression that is iptables' comment
// match, else "".
func xtComment(e *netlink.AttributeDecoder) string {
	var name string
	var data []byte
	for e.Next() {
		switch e.Type() {
		case unix.NFTA_EXPR_NAME:
			name = e.String()
		case unix.NFTA_EXPR_DATA:
			data = e.Bytes()
		}
	}
	if name != "match" || data == nil {
		return ""
	}
	m, err := netlink.NewAttributeDecoder(data)
	if err != nil {
		return ""
	}
	var mname string
	var info []byte
	for m.Next() {
		switch m.Type() {
		case unix.NFTA_MATCH_NAME:
			mname = m.String()
		case unix.NFTA_MATCH_INFO:
			info = m.Bytes()
		}
	}
	if mname != "comment" {
		return ""
	}
	s, _, _ := strings.Cut(string(info), "\x00")
	return s
}

// userdataComment reads the comment out of a rule's userdata: type-
// length-value, type 0 the comment, NUL-terminated.
func userdataComment(u []byte) string {
	for ; len(u) >= 2 && int(u[1])+2 <= len(u); u = u[2+int(u[1]):] {
		if u[0] == 0 {
			s, _, _ := strings.Cut(string(u[2:2+int(u[1])]), "\x00")
			return s
		}
	}
	return ""
}
