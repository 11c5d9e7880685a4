package hostlocal

import (
	"net"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
	"github.com/dockernet/cni-plugins/plugins/pkg/ipaddr"
)

// allocate reserves one address of range set idx for id/ifname: the requested
// one when given, otherwise the next free one after the last handed out
// (round robin, so a just-released address is not reused at once).
// firstUse says the address was never handed out before (first_use.go).
func allocate(s *Store, set RangeSet, idx int, id, ifname string, requested net.IP) (ipc *current.IPConfig, firstUse bool, err error) {
	if requested != nil {
		if err := s.endFirstLap(idx); err != nil {
			return nil, false, cnierr.IO("%v", err)
		}
		r := set.RangeFor(requested)
		if r == nil {
			return nil, false, cnierr.Config("requested address %s is outside range set %s", requested, set.String())
		}
		if requested.Equal(r.Gateway) {
			return nil, false, cnierr.Config("requested address %s is the gateway of subnet %s", requested, (*net.IPNet)(&r.Subnet).String())
		}
		ok, err := s.Reserve(id, ifname, requested, idx)
		if err != nil {
			return nil, false, cnierr.IO("%v", err)
		}
		if !ok {
			return nil, false, cnierr.TryAgain("requested address %s is already reserved by another container in range set %s; release it or request another", requested, set.String())
		}
		return ipConfig(r, requested), false, nil
	}

	it := newIterator(set, s.LastReserved(idx))
	firstLap := s.firstLap(idx)
	for {
		r, addr := it.next()
		if addr == nil {
			break
		}
		if it.wrapped && firstLap {
			if err := s.endFirstLap(idx); err != nil {
				return nil, false, cnierr.IO("%v", err)
			}
			firstLap = false
		}
		ok, err := s.Reserve(id, ifname, addr, idx)
		if err != nil {
			return nil, false, cnierr.IO("%v", err)
		}
		if ok {
			return ipConfig(r, addr), firstLap, nil
		}
	}
	return nil, false, cnierr.TryAgain("no IP addresses available in range set %s: every address is reserved (free some with DEL, or widen the range)", set.String())
}

func ipConfig(r *Range, addr net.IP) *current.IPConfig {
	return &current.IPConfig{
		Address: net.IPNet{IP: addr, Mask: r.Subnet.Mask},
		Gateway: r.Gateway,
	}
}

// iterator walks every address of a range set exactly once, starting after
// `last` when last is inside the set, and skips each range's gateway.
type iterator struct {
	set        RangeSet
	rangeIdx   int
	cur        net.IP
	startRange int
	startIP    net.IP
	started    bool
	wrapped    bool // it went past the set's end back to its start, or started there anew
}

func newIterator(set RangeSet, last net.IP) *iterator {
	it := &iterator{set: set}
	// Default: start at the first address of the first range.
	it.rangeIdx, it.startIP = 0, set[0].RangeStart
	if last != nil {
		it.wrapped = true // unless last is in the set: the ranges changed
		for i := range set {
			if set[i].Contains(last) {
				it.rangeIdx, it.wrapped = i, false
				it.startIP = ipaddr.Next(last)
				if !set[i].Contains(it.startIP) {
					it.rangeIdx = (i + 1) % len(set)
					it.startIP = set[it.rangeIdx].RangeStart
					it.wrapped = it.rangeIdx == 0
				}
				break
			}
		}
	}
	it.startRange = it.rangeIdx
	return it
}

// next returns the next candidate, or a nil address after a full lap.
func (it *iterator) next() (*Range, net.IP) {
	for {
		r := &it.set[it.rangeIdx]
		switch {
		case !it.started:
			it.started = true
			it.cur = it.startIP
		default:
			nxt := ipaddr.Next(it.cur)
			if nxt == nil || !r.Contains(nxt) {
				it.rangeIdx = (it.rangeIdx + 1) % len(it.set)
				r = &it.set[it.rangeIdx]
				nxt = r.RangeStart
				it.wrapped = it.wrapped || it.rangeIdx == 0
			}
			if it.rangeIdx == it.startRange && nxt.Equal(it.startIP) {
				return nil, nil // full lap
			}
			it.cur = nxt
		}
		if !it.cur.Equal(r.Gateway) {
			return r, it.cur
		}
	}
}
