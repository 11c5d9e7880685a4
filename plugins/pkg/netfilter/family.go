package netfilter

import (
	"fmt"
	"net"

	"github.com/google/nftables"
)

// Family is an address family.
type Family int

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// BothFamilies is what a DEL without prevResult must look at.
var BothFamilies = []Family{IPv4, IPv6}

func (f Family) String() string { return fmt.Sprintf("IPv%d", int(f)) }

// FamilyOf returns the family of ip.
func FamilyOf(ip net.IP) Family {
	if ip.To4() != nil {
		return IPv4
	}
	return IPv6
}

// IPTables is the family's iptables command: "iptables" or "ip6tables".
func (f Family) IPTables() string {
	if f == IPv6 {
		return "ip6tables"
	}
	return "iptables"
}

// NFT is the family's nf_tables table family (ip or ip6).
func (f Family) NFT() nftables.TableFamily {
	if f == IPv6 {
		return nftables.TableFamilyIPv6
	}
	return nftables.TableFamilyIPv4
}

// NFTName is how nft spells the table family.
func (f Family) NFTName() string {
	if f == IPv6 {
		return "ip6"
	}
	return "ip"
}

// HostPrefix is the prefix length of one address: /32 or /128.
func (f Family) HostPrefix() string {
	if f == IPv6 {
		return "/128"
	}
	return "/32"
}

// Loopback is the family's loopback network.
func (f Family) Loopback() string {
	if f == IPv6 {
		return "::1/128"
	}
	return "127.0.0.0/8"
}

// ForwardingKey is the family's forwarding switch under /proc/sys.
func (f Family) ForwardingKey() string {
	if f == IPv6 {
		return "net/ipv6/conf/all/forwarding"
	}
	return "net/ipv4/ip_forward"
}
