package hostlocal

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
)

func mustRange(t *testing.T, js string) Range {
	t.Helper()
	var r Range
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRangeCanonicalize(t *testing.T) {
	cases := []struct {
		name, in                 string
		start, end, gw, errMatch string
	}{
		{name: "v4 defaults", in: `{"subnet":"172.17.0.0/16"}`, start: "172.17.0.1", end: "172.17.255.254", gw: "172.17.0.1"},
		{name: "v4 explicit", in: `{"subnet":"10.0.0.0/24","rangeStart":"10.0.0.10","rangeEnd":"10.0.0.20","gateway":"10.0.0.254"}`, start: "10.0.0.10", end: "10.0.0.20", gw: "10.0.0.254"},
		{name: "v6 keeps last address", in: `{"subnet":"fd00::/120"}`, start: "fd00::1", end: "fd00::ff", gw: "fd00::1"},
		{name: "smallest v4", in: `{"subnet":"10.0.0.0/30"}`, start: "10.0.0.1", end: "10.0.0.2", gw: "10.0.0.1"},
		{name: "too small", in: `{"subnet":"10.0.0.0/31"}`, errMatch: "too small"},
		{name: "host bits", in: `{"subnet":"10.0.0.5/24"}`, errMatch: "host bits set"},
		{name: "start outside", in: `{"subnet":"10.0.0.0/24","rangeStart":"10.0.1.1"}`, errMatch: "rangeStart 10.0.1.1 is outside"},
		{name: "end outside", in: `{"subnet":"10.0.0.0/24","rangeEnd":"10.0.1.1"}`, errMatch: "rangeEnd 10.0.1.1 is outside"},
		{name: "gateway outside", in: `{"subnet":"10.0.0.0/24","gateway":"10.9.0.1"}`, errMatch: "gateway 10.9.0.1 is outside"},
		{name: "start after end", in: `{"subnet":"10.0.0.0/24","rangeStart":"10.0.0.9","rangeEnd":"10.0.0.3"}`, errMatch: "after rangeEnd"},
		{name: "missing subnet", in: `{}`, errMatch: "missing \"subnet\""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := mustRange(t, c.in)
			err := r.Canonicalize()
			if c.errMatch != "" {
				if err == nil || !strings.Contains(err.Error(), c.errMatch) {
					t.Fatalf("got %v, want error containing %q", err, c.errMatch)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.RangeStart.String() != c.start || r.RangeEnd.String() != c.end || r.Gateway.String() != c.gw {
				t.Fatalf("got %s-%s gw %s, want %s-%s gw %s", r.RangeStart, r.RangeEnd, r.Gateway, c.start, c.end, c.gw)
			}
		})
	}
}

func TestRangeSetRules(t *testing.T) {
	mixed := RangeSet{mustRange(t, `{"subnet":"10.0.0.0/24"}`), mustRange(t, `{"subnet":"fd00::/64"}`)}
	if err := mixed.Canonicalize(); err == nil || !strings.Contains(err.Error(), "mixes IPv4 and IPv6") {
		t.Errorf("mixed families: %v", err)
	}
	overlap := RangeSet{mustRange(t, `{"subnet":"10.0.0.0/24"}`), mustRange(t, `{"subnet":"10.0.0.0/25"}`)}
	if err := overlap.Canonicalize(); err == nil || !strings.Contains(err.Error(), "overlap") {
		t.Errorf("overlap: %v", err)
	}
	two := RangeSet{mustRange(t, `{"subnet":"10.0.0.0/24"}`), mustRange(t, `{"subnet":"10.0.1.0/24"}`)}
	if err := two.Canonicalize(); err != nil {
		t.Fatal(err)
	}
	if r := two.RangeFor(net.ParseIP("10.0.1.7")); r == nil || r.Subnet.IP.String() != "10.0.1.0" {
		t.Errorf("RangeFor 10.0.1.7 = %v", r)
	}
	if r := two.RangeFor(net.ParseIP("10.0.2.7")); r != nil {
		t.Errorf("RangeFor 10.0.2.7 = %v, want nil", r)
	}
	if r := two.RangeFor(net.ParseIP("10.0.0.255")); r != nil {
		t.Errorf("broadcast 10.0.0.255 is in range %v", r)
	}
	if got := two[0].Size().Int64(); got != 254 {
		t.Errorf("size of 10.0.0.0/24 = %d, want 254", got)
	}
}

// The iterator visits every address once, skips the gateway, wraps across
// ranges, and starts after the last reserved address (round robin).
func TestIteratorOrder(t *testing.T) {
	set := RangeSet{
		mustRange(t, `{"subnet":"10.0.0.0/29"}`),                                               // .1 (gw) .. .6
		mustRange(t, `{"subnet":"10.0.1.0/24","rangeStart":"10.0.1.5","rangeEnd":"10.0.1.6"}`), // gw .1 outside the range
	}
	if err := set.Canonicalize(); err != nil {
		t.Fatal(err)
	}
	walk := func(last string) []string {
		var lastIP net.IP
		if last != "" {
			lastIP = net.ParseIP(last)
		}
		it := newIterator(set, lastIP)
		var out []string
		for {
			_, a := it.next()
			if a == nil {
				return out
			}
			out = append(out, a.String())
			if len(out) > 20 {
				t.Fatal("iterator does not stop")
			}
		}
	}
	cases := []struct{ last, want string }{
		{"", "10.0.0.2 10.0.0.3 10.0.0.4 10.0.0.5 10.0.0.6 10.0.1.5 10.0.1.6"},
		{"10.0.0.4", "10.0.0.5 10.0.0.6 10.0.1.5 10.0.1.6 10.0.0.2 10.0.0.3 10.0.0.4"},
		{"10.0.1.6", "10.0.0.2 10.0.0.3 10.0.0.4 10.0.0.5 10.0.0.6 10.0.1.5 10.0.1.6"},
		{"192.168.0.1", "10.0.0.2 10.0.0.3 10.0.0.4 10.0.0.5 10.0.0.6 10.0.1.5 10.0.1.6"},
	}
	for _, c := range cases {
		if got := strings.Join(walk(c.last), " "); got != c.want {
			t.Errorf("after %q:\n got  %s\n want %s", c.last, got, c.want)
		}
	}
}
