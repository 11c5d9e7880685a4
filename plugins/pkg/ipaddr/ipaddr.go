// Package ipaddr is address arithmetic for IPAM: the next and previous
// address and their order, on the address's own family (4 bytes for
// IPv4, 16 for IPv6). It is what containernetworking/plugins/pkg/ip
// offers for the same, without linking that package's netfilter
// dependencies (knftables and its package init) into every plugin that
// starts per container.
package ipaddr

import (
	"bytes"
	"net"
)

// normal is ip in its family's length, or nil if it is not an address.
func normal(ip net.IP) net.IP {
	if v4 := ip.To4(); v4 != nil {
		return v4
	}
	return ip.To16()
}

// Next is the address after ip, or nil past the family's last address.
func Next(ip net.IP) net.IP { return step(ip, 1) }

// Prev is the address before ip, or nil before the family's first.
func Prev(ip net.IP) net.IP { return step(ip, -1) }

func step(ip net.IP, by int) net.IP {
	n := normal(ip)
	if n == nil {
		return nil
	}
	out := make(net.IP, len(n))
	copy(out, n)
	for i := len(out) - 1; i >= 0; i-- {
		if by > 0 {
			out[i]++
			if out[i] != 0 {
				return out
			}
		} else {
			out[i]--
			if out[i] != 0xff {
				return out
			}
		}
	}
	return nil // wrapped around: there is no such address
}

// Cmp orders two addresses of one family: -1, 0 or 1; -2 when their
// families differ or either is not an address.
func Cmp(a, b net.IP) int {
	na, nb := normal(a), normal(b)
	if len(na) == 0 || len(na) != len(nb) {
		return -2
	}
	return bytes.Compare(na, nb)
}
