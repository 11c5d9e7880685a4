package hostlocal

import (
	"fmt"
	"math/big"
	"net"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/dockernet/cni-plugins/plugins/pkg/ipaddr"
)

// Range is one contiguous block of addresses inside a subnet, as in the
// reference host-local: rangeStart and rangeEnd are inclusive.
type Range struct {
	RangeStart net.IP      `json:"rangeStart,omitempty"`
	RangeEnd   net.IP      `json:"rangeEnd,omitempty"`
	Subnet     types.IPNet `json:"subnet"`
	Gateway    net.IP      `json:"gateway,omitempty"`
}

// Canonicalize validates r and fills in its defaults: the gateway and the
// start default to the subnet's first host address, the end to its last
// (for IPv4 the broadcast address is never handed out).
func (r *Range) Canonicalize() error {
	if r.Subnet.IP == nil {
		return fmt.Errorf("missing \"subnet\": every range needs one, e.g. \"subnet\": \"172.17.0.0/16\"")
	}
	subnet := net.IPNet(r.Subnet)
	if v4 := subnet.IP.To4(); v4 != nil {
		if len(subnet.Mask) == net.IPv6len {
			subnet.Mask = subnet.Mask[12:]
		}
		subnet.IP = v4
	}
	ones, bits := subnet.Mask.Size()
	if bits == 0 {
		return fmt.Errorf("subnet %s has an invalid mask", (*net.IPNet)(&r.Subnet).String())
	}
	if ones > bits-2 {
		return fmt.Errorf("subnet %s is too small to allocate from: use a prefix of /%d or shorter", subnet.String(), bits-2)
	}
	if !subnet.IP.Equal(subnet.IP.Mask(subnet.Mask)) {
		return fmt.Errorf("subnet %s has host bits set: for a /%d the network address is %s", subnet.String(), ones, subnet.IP.Mask(subnet.Mask))
	}
	r.Subnet = types.IPNet(subnet)

	norm := func(what string, a net.IP) (net.IP, error) {
		if a == nil {
			return nil, nil
		}
		if v4 := a.To4(); v4 != nil && len(subnet.IP) == net.IPv4len {
			a = v4
		}
		if !subnet.Contains(a) {
			return nil, fmt.Errorf("%s %s is outside subnet %s", what, a, subnet.String())
		}
		return a, nil
	}
	var err error
	if r.Gateway, err = norm("gateway", r.Gateway); err != nil {
		return err
	}
	if r.Gateway == nil {
		r.Gateway = ipaddr.Next(subnet.IP)
	}
	if r.RangeStart, err = norm("rangeStart", r.RangeStart); err != nil {
		return err
	}
	if r.RangeStart == nil {
		r.RangeStart = ipaddr.Next(subnet.IP)
	}
	if r.RangeEnd, err = norm("rangeEnd", r.RangeEnd); err != nil {
		return err
	}
	if r.RangeEnd == nil {
		r.RangeEnd = lastHost(subnet)
	}
	if ipaddr.Cmp(r.RangeStart, r.RangeEnd) > 0 {
		return fmt.Errorf("rangeStart %s is after rangeEnd %s", r.RangeStart, r.RangeEnd)
	}
	return nil
}

// lastHost is the last allocatable address: for IPv4 the one before broadcast.
func lastHost(subnet net.IPNet) net.IP {
	end := make(net.IP, len(subnet.IP))
	for i := range subnet.IP {
		end[i] = subnet.IP[i] | ^subnet.Mask[i]
	}
	if len(end) == net.IPv4len {
		end = ipaddr.Prev(end)
	}
	return end
}

// Contains reports whether addr is in [RangeStart, RangeEnd] of the subnet.
func (r *Range) Contains(addr net.IP) bool {
	subnet := net.IPNet(r.Subnet)
	if !subnet.Contains(addr) {
		return false
	}
	if (addr.To4() == nil) != (subnet.IP.To4() == nil) {
		return false
	}
	return ipaddr.Cmp(addr, r.RangeStart) >= 0 && ipaddr.Cmp(addr, r.RangeEnd) <= 0
}

// Overlaps reports whether two canonical ranges share an address.
func (r *Range) Overlaps(o *Range) bool {
	if (r.RangeStart.To4() == nil) != (o.RangeStart.To4() == nil) {
		return false
	}
	return r.Contains(o.RangeStart) || r.Contains(o.RangeEnd) || o.Contains(r.RangeStart) || o.Contains(r.RangeEnd)
}

// Size is the number of addresses in the range.
func (r *Range) Size() *big.Int {
	a := new(big.Int).SetBytes(r.RangeEnd.To16())
	b := new(big.Int).SetBytes(r.RangeStart.To16())
	return a.Sub(a, b).Add(a, big.NewInt(1))
}

func (r *Range) String() string {
	return fmt.Sprintf("%s-%s", r.RangeStart, r.RangeEnd)
}

// RangeSet is a list of ranges of one family; an attachment gets one
// address from each range set.
type RangeSet []Range

// Canonicalize validates every range and that they agree on family and do not overlap.
func (s RangeSet) Canonicalize() error {
	if len(s) == 0 {
		return fmt.Errorf("empty range set: give at least one {\"subnet\": ...}")
	}
	for i := range s {
		if err := s[i].Canonicalize(); err != nil {
			return err
		}
	}
	fam := len(s[0].RangeStart)
	for i := range s {
		if len(s[i].RangeStart) != fam {
			return fmt.Errorf("range set mixes IPv4 and IPv6 (%s and %s): put each family in its own range set", s[0].String(), s[i].String())
		}
		for j := i + 1; j < len(s); j++ {
			if s[i].Overlaps(&s[j]) {
				return fmt.Errorf("ranges %s and %s overlap", s[i].String(), s[j].String())
			}
		}
	}
	return nil
}

// RangeFor returns the range holding addr, or nil.
func (s RangeSet) RangeFor(addr net.IP) *Range {
	for i := range s {
		if s[i].Contains(addr) {
			return &s[i]
		}
	}
	return nil
}

// Overlaps reports whether any range of s overlaps any of o.
func (s RangeSet) Overlaps(o RangeSet) bool {
	for i := range s {
		for j := range o {
			if s[i].Overlaps(&o[j]) {
				return true
			}
		}
	}
	return false
}

func (s RangeSet) String() string {
	out := ""
	for i := range s {
		if i > 0 {
			out += ","
		}
		out += s[i].String()
	}
	return out
}
