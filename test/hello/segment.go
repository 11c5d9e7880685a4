package main

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"time"
)

// TCP header flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
	tcpURG = 0x20
)

// parseFlags reads "FIN", "SYN", "none" or a list such as "FIN,PSH,URG".
func parseFlags(s string) (byte, error) {
	if s == "none" {
		return 0, nil
	}
	names := map[string]byte{"FIN": tcpFIN, "SYN": tcpSYN, "RST": tcpRST, "PSH": tcpPSH, "ACK": tcpACK, "URG": tcpURG}
	var out byte
	for _, n := range strings.Split(s, ",") {
		f, ok := names[strings.ToUpper(n)]
		if !ok {
			return 0, fmt.Errorf("unknown TCP flag %q", n)
		}
		out |= f
	}
	return out, nil
}

func flagNames(f byte) string {
	var out []string
	for _, n := range []struct {
		bit  byte
		name string
	}{{tcpSYN, "SYN"}, {tcpACK, "ACK"}, {tcpRST, "RST"}, {tcpFIN, "FIN"}, {tcpPSH, "PSH"}, {tcpURG, "URG"}} {
		if f&n.bit != 0 {
			out = append(out, n.name)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ",")
}

// segment sends one bare TCP segment with flags to addr (host:port), as a
// port scanner would (a FIN scan, a null scan), and prints the flags of
// the first segment that comes back from there within wait, or "no
// reply". A closed port answers a FIN or a flagless segment with RST, an
// open one answers a SYN with SYN,ACK: what a scan learns from. It sends
// three times, a third of wait apart, in case the first waits for a
// neighbour to resolve.
func segment(addr, flags string, wait time.Duration) error {
	f, err := parseFlags(flags)
	if err != nil {
		return err
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	dst := net.ParseIP(host)
	var dport int
	if _, err := fmt.Sscan(portStr, &dport); err != nil || dst == nil {
		return fmt.Errorf("segment: want IP:PORT, got %q", addr)
	}
	src, err := sourceFor(dst)
	if err != nil {
		return err
	}
	v4 := dst.To4() != nil
	domain := syscall.AF_INET6
	if v4 {
		domain, dst, src = syscall.AF_INET, dst.To4(), src.To4()
	}
	fd, err := syscall.Socket(domain, syscall.SOCK_RAW, syscall.IPPROTO_TCP)
	if err != nil {
		return fmt.Errorf("segment: raw socket: %v", err)
	}
	defer syscall.Close(fd)
	sport := 40000 + rand.IntN(20000)
	seg := tcpSegment(src, dst, sport, dport, f)
	var to syscall.Sockaddr
	if v4 {
		sa := &syscall.SockaddrInet4{}
		copy(sa.Addr[:], dst)
		to = sa
	} else {
		sa := &syscall.SockaddrInet6{}
		copy(sa.Addr[:], dst.To16())
		to = sa
	}
	deadline := time.Now().Add(wait)
	buf := make([]byte, 1500)
	for try := 0; try < 3; try++ {
		if err := syscall.Sendto(fd, seg, 0, to); err != nil {
			return fmt.Errorf("segment: send: %v", err)
		}
		until := time.Now().Add(wait / 3)
		if try == 2 {
			until = deadline
		}
		for {
			left := time.Until(until)
			if left <= 0 {
				break
			}
			tv := syscall.NsecToTimeval(left.Nanoseconds())
			_ = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
			n, from, err := syscall.Recvfrom(fd, buf, 0)
			if err != nil {
				break // the timeout
			}
			tcp := buf[:n]
			var fromIP net.IP
			switch a := from.(type) {
			case *syscall.SockaddrInet4:
				fromIP = net.IP(a.Addr[:])
				if n < 20 {
					continue
				}
				tcp = buf[int(buf[0]&0x0f)*4 : n] // an IPv4 raw socket gets the IP header too
			case *syscall.SockaddrInet6:
				fromIP = net.IP(a.Addr[:])
			}
			if len(tcp) < 20 || !fromIP.Equal(dst) ||
				int(binary.BigEndian.Uint16(tcp[0:])) != dport || int(binary.BigEndian.Uint16(tcp[2:])) != sport {
				continue
			}
			fmt.Println("reply:", flagNames(tcp[13]))
			return nil
		}
	}
	fmt.Println("no reply")
	return nil
}

// sourceFor is the address the kernel would send from towards dst.
func sourceFor(dst net.IP) (net.IP, error) {
	c, err := net.Dial("udp", net.JoinHostPort(dst.String(), "9"))
	if err != nil {
		return nil, fmt.Errorf("segment: no route to %s: %v", dst, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP, nil
}

// tcpSegment is a 20-byte TCP header with its checksum over the pseudo
// header of src and dst.
func tcpSegment(src, dst net.IP, sport, dport int, flags byte) []byte {
	seg := make([]byte, 20)
	binary.BigEndian.PutUint16(seg[0:], uint16(sport))
	binary.BigEndian.PutUint16(seg[2:], uint16(dport))
	binary.BigEndian.PutUint32(seg[4:], rand.Uint32())
	if flags&tcpACK != 0 {
		binary.BigEndian.PutUint32(seg[8:], rand.Uint32())
	}
	seg[12] = 5 << 4
	seg[13] = flags
	binary.BigEndian.PutUint16(seg[14:], 64240)
	pseudo := append(append([]byte{}, src...), dst...)
	if len(src) == 4 {
		pseudo = append(pseudo, 0, syscall.IPPROTO_TCP, 0, byte(len(seg)))
	} else {
		pseudo = append(pseudo, 0, 0, 0, byte(len(seg)), 0, 0, 0, syscall.IPPROTO_TCP)
	}
	binary.BigEndian.PutUint16(seg[16:], checksum(append(pseudo, seg...)))
	return seg
}

func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = (sum & 0xffff) + sum>>16
	}
	return ^uint16(sum)
}
