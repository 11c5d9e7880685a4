package watch

import (
	"io"
	"log"
	"net"
	"os"
	"reflect"
	"sort"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// Docker binds every published port for the container's lifetime, so a
// host service started later fails with "address already in use" instead
// of being silently shadowed by the DNAT. The agent does the same: a
// bound socket per published port, on the mapping's address or every
// address of its family (IPv6 sockets are IPV6_V6ONLY: an IPv6 mapping
// does not take the IPv4 port). The DNAT comes first, for connections
// from outside and from the host alike, so no packet reaches them while
// the rules are in place. portmap's listener check passes over them.

// heldPort is one port the records publish.
type heldPort struct {
	f     netfilter.Family
	proto string
	host  string // "" for every address of the family
	port  int
}

func (p heldPort) String() string {
	host := p.host
	if host == "" {
		host = map[netfilter.Family]string{netfilter.IPv4: "0.0.0.0", netfilter.IPv6: "::"}[p.f]
	}
	return net.JoinHostPort(host, strconv.Itoa(p.port)) + "/" + p.proto
}

type holder struct {
	log    *log.Logger
	socks  map[heldPort]io.Closer
	failed map[heldPort]bool // said once
	// last is the want of the last sync, and list the held ports sorted:
	// an idle look with nothing changed and nothing failed does no work.
	last map[heldPort]string
	list []string
}

func newHolder(l *log.Logger) *holder {
	return &holder{log: l, socks: map[heldPort]io.Closer{}, failed: map[heldPort]bool{}}
}

func (h *holder) count() int {
	if h == nil {
		return 0
	}
	return len(h.socks)
}

// held lists the ports held, sorted.
func (h *holder) held() []string {
	if h == nil {
		return nil
	}
	if h.list == nil {
		h.list = []string{}
		for p := range h.socks {
			h.list = append(h.list, p.String())
		}
		sort.Strings(h.list)
	}
	return h.list
}

// sync holds what want names (port → container) and releases the rest.
func (h *holder) sync(want map[heldPort]string) {
	if len(h.failed) == 0 && h.last != nil && reflect.ValueOf(want).UnsafePointer() == reflect.ValueOf(h.last).UnsafePointer() {
		return // the same records as last time, all held
	}
	h.last, h.list = want, nil
	for p, c := range h.socks {
		if _, ok := want[p]; !ok {
			_ = c.Close()
			delete(h.socks, p)
			h.log.Printf("released %s", p)
		}
	}
	for p := range h.failed {
		if _, ok := want[p]; !ok {
			delete(h.failed, p)
		}
	}
	for p, owner := range want {
		if _, ok := h.socks[p]; ok {
			continue
		}
		c, err := bind(p)
		if err != nil {
			if !h.failed[p] {
				h.log.Printf("cannot hold %s for container %s: %v", p, owner, err)
				h.failed[p] = true
			}
			continue
		}
		delete(h.failed, p)
		h.socks[p] = c
		h.log.Printf("holding %s for container %s", p, owner)
	}
}

func (h *holder) releaseAll() {
	for p, c := range h.socks {
		_ = c.Close()
		delete(h.socks, p)
	}
	h.last, h.list = nil, nil
}

// bind opens p's socket: TCP bound and not listening, so that a
// connection arriving while the DNAT is gone (a flush, before the
// restore) is refused at once rather than left in a backlog no one
// accepts; UDP bound. IPv6 sockets are v6only, and none has
// SO_REUSEADDR, so a service's bind conflicts with them.
func bind(p heldPort) (io.Closer, error) {
	af, ip := unix.AF_INET, net.IPv4zero.To4()
	if p.f == netfilter.IPv6 {
		af, ip = unix.AF_INET6, net.IPv6zero
	}
	if p.host != "" {
		ip = net.ParseIP(p.host)
		if p.f == netfilter.IPv4 {
			ip = ip.To4()
		}
	}
	typ := unix.SOCK_STREAM
	if p.proto == "udp" {
		typ = unix.SOCK_DGRAM
	}
	fd, err := unix.Socket(af, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	var sa unix.Sockaddr
	if p.f == netfilter.IPv6 {
		err = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
		a := &unix.SockaddrInet6{Port: p.port}
		copy(a.Addr[:], ip.To16())
		sa = a
	} else {
		a := &unix.SockaddrInet4{Port: p.port}
		copy(a.Addr[:], ip)
		sa = a
	}
	if err == nil {
		err = unix.Bind(fd, sa)
	}
	if err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), p.String()), nil
}

// heldPortOf is the port the agent holds for m in family f; false for a
// mapping it does not hold (another family, a protocol without one).
func heldPortOf(f netfilter.Family, m netfilter.PortMapping) (heldPort, bool) {
	host, ok := netfilter.HostIPFor(m, f)
	if !ok || (m.Protocol != "tcp" && m.Protocol != "udp") {
		return heldPort{}, false
	}
	return heldPort{f: f, proto: m.Protocol, host: host, port: m.HostPort}, true
}

// PortKey names the socket the agent holds for m in family f, as its
// status file lists it; false for a mapping it does not hold.
func PortKey(f netfilter.Family, m netfilter.PortMapping) (string, bool) {
	p, ok := heldPortOf(f, m)
	if !ok {
		return "", false
	}
	return p.String(), true
}
