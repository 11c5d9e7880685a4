package hostlocal

import (
	"fmt"
	"testing"
)

// BenchmarkAllocateRelease measures one ADD+DEL with N reservations present,
// to keep the allocator's cost independent of how full the range is.
func BenchmarkAllocateRelease(b *testing.B) {
	for _, n := range []int{0, 1000} {
		b.Run(fmt.Sprintf("present=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			c := config(b, dir, `{"type":"host-local","subnet":"10.9.0.0/16"}`)
			for i := 0; i < n; i++ {
				if _, err := Allocate(c, fmt.Sprintf("filler%d", i), "eth0"); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := Allocate(c, "probe", "eth0"); err != nil {
					b.Fatal(err)
				}
				s, err := OpenStore(dir, c.Name)
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Release("probe", "eth0"); err != nil {
					b.Fatal(err)
				}
				s.Close()
			}
		})
	}
}
