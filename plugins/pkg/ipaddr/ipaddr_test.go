package ipaddr

import (
	"net"
	"testing"
)

func TestNextPrev(t *testing.T) {
	for _, tc := range []struct{ in, next, prev string }{
		{"10.0.0.1", "10.0.0.2", "10.0.0.0"},
		{"10.0.0.255", "10.0.1.0", "10.0.0.254"},
		{"10.0.1.0", "10.0.1.1", "10.0.0.255"},
		{"255.255.255.255", "", "255.255.255.254"},
		{"0.0.0.0", "0.0.0.1", ""},
		{"::1", "::2", "::"},
		{"fd00::ffff", "fd00::1:0", "fd00::fffe"},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"},
		{"::", "::1", ""},
	} {
		in := net.ParseIP(tc.in)
		if got := Next(in); !equal(got, tc.next) {
			t.Errorf("Next(%s) = %v, want %q", tc.in, got, tc.next)
		}
		if got := Prev(in); !equal(got, tc.prev) {
			t.Errorf("Prev(%s) = %v, want %q", tc.in, got, tc.prev)
		}
	}
	if Next(nil) != nil || Prev(net.IP{1, 2}) != nil {
		t.Error("not an address: want nil")
	}
	if v4 := Next(net.ParseIP("10.0.0.1")); len(v4) != net.IPv4len {
		t.Errorf("Next of an IPv4 address has %d bytes, want 4", len(v4))
	}
}

func equal(got net.IP, want string) bool {
	if want == "" {
		return got == nil
	}
	return got.Equal(net.ParseIP(want))
}

func TestCmp(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"10.0.0.1", "10.0.0.2", -1},
		{"10.0.0.2", "10.0.0.1", 1},
		{"10.0.0.1", "10.0.0.1", 0},
		{"10.0.0.1", "::ffff:10.0.0.1", 0}, // one address, two spellings
		{"10.0.0.1", "fd00::1", -2},
		{"10.0.0.1", "", -2},
		{"fd00::1", "fd00::2", -1},
	} {
		if got := Cmp(net.ParseIP(tc.a), net.ParseIP(tc.b)); got != tc.want {
			t.Errorf("Cmp(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
