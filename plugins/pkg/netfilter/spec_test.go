package netfilter

import (
	"net"
	"testing"
)

// The families a hostIP publishes in, as Docker and the reference read it.
func TestHostIPFor(t *testing.T) {
	cases := []struct {
		hostIP       string
		v4, v6       bool
		addr4, addr6 string
	}{
		{"", true, true, "", ""},
		{"0.0.0.0", true, false, "", ""},
		{"::", false, true, "", ""},
		{"127.0.0.1", true, false, "127.0.0.1", ""},
		{"::1", false, true, "", "::1"},
	}
	for _, c := range cases {
		m := PortMapping{HostPort: 80, ContainerPort: 80, Protocol: "tcp", HostIP: net.ParseIP(c.hostIP)}
		a4, ok4 := HostIPFor(m, IPv4)
		a6, ok6 := HostIPFor(m, IPv6)
		if ok4 != c.v4 || ok6 != c.v6 || a4 != c.addr4 || a6 != c.addr6 {
			t.Errorf("hostIP %q: IPv4 %v %q, IPv6 %v %q; want %v %q, %v %q", c.hostIP, ok4, a4, ok6, a6, c.v4, c.addr4, c.v6, c.addr6)
		}
	}
}
