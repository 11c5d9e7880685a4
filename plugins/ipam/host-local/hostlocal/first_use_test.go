package hostlocal

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Each step is an ADD (id) or a DEL (-id); want is the ADD's address and
// whether it is reported a first use.
type firstUseStep struct {
	id, want string
	first    bool
}

func TestFirstUse(t *testing.T) {
	const two = `{"type":"host-local","ranges":[[{"subnet":"10.3.0.0/24","rangeStart":"10.3.0.10","rangeEnd":"10.3.0.11"}]]}`
	const split = `{"type":"host-local","ranges":[[{"subnet":"10.3.0.0/24","rangeStart":"10.3.0.10","rangeEnd":"10.3.0.10"},{"subnet":"10.4.0.0/24","rangeStart":"10.4.0.10","rangeEnd":"10.4.0.10"}]]}`
	for _, tc := range []struct {
		name, ipam string
		setup      func(t *testing.T, dir string)
		steps      []firstUseStep
	}{
		{"round robin until it wraps", two, nil, []firstUseStep{
			{"a", "10.3.0.10", true}, {"b", "10.3.0.11", true}, {"-a", "", false},
			{"c", "10.3.0.10", false}, // wrapped: a held it
			{"-b", "", false}, {"d", "10.3.0.11", false},
		}},
		{"freed before the wrap, still not reused in the lap", two, nil, []firstUseStep{
			{"a", "10.3.0.10", true}, {"-a", "", false}, {"b", "10.3.0.11", true},
			{"c", "10.3.0.10", false},
		}},
		{"across the ranges of one set: a wrap only back to the first", split, nil, []firstUseStep{
			{"a", "10.3.0.10", true}, {"b", "10.4.0.10", true}, {"-a", "", false},
			{"c", "10.3.0.10", false},
		}},
		{"a requested address ends the lap", two, nil, []firstUseStep{
			{"a@10.3.0.11", "10.3.0.11", false}, {"-a", "", false},
			{"b", "10.3.0.10", false}, {"c", "10.3.0.11", false},
		}},
		{"a store the reference plugin changed", two, func(t *testing.T, dir string) {
			// As the reference leaves a store: reservations, no index marker.
			if err := os.MkdirAll(filepath.Join(dir, "net1"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, []firstUseStep{{"a", "10.3.0.10", false}, {"b", "10.3.0.11", false}}},
		{"the ranges changed under the round robin", two, func(t *testing.T, dir string) {
			c := config(t, dir, `{"type":"host-local","ranges":[[{"subnet":"10.9.0.0/24"}]]}`)
			if _, err := Allocate(c, "old", "eth0"); err != nil {
				t.Fatal(err)
			}
		}, []firstUseStep{{"a", "10.3.0.10", false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			for _, st := range tc.steps {
				id, requested, _ := strings.Cut(st.id, "@")
				if del, ok := strings.CutPrefix(id, "-"); ok {
					c := config(t, dir, tc.ipam)
					s, err := OpenStore(dir, c.Name)
					if err != nil {
						t.Fatal(err)
					}
					err = s.Release(del, "eth0")
					s.Close()
					if err != nil {
						t.Fatal(err)
					}
					continue
				}
				c := config(t, dir, tc.ipam)
				if requested != "" {
					c.RequestedIP = append(c.RequestedIP, parseRequested(requested))
				}
				res, firstUse, err := AllocateNoting(c, id, "eth0")
				if err != nil {
					t.Fatalf("%s: %v", st.id, err)
				}
				got := res.IPs[0].Address.IP.String()
				if got != st.want || (len(firstUse) == 1) != st.first {
					t.Errorf("%s: got %s, first use %v; want %s, first use %v", st.id, got, firstUse, st.want, st.first)
				}
			}
		})
	}
}
