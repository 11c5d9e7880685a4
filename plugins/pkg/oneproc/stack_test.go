package oneproc

import (
	"testing"
	"unsafe"
)

// A goroutine's stack moves when it grows: the address of a local
// variable taken before a deep call differs from the one taken after.
// After ReserveStack(n) a call that needs a little less than n must not
// move it; without it (the control), the same call does.
func TestReserveStack(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reserve int
		deep    func() byte
	}{
		{"16K", 16 << 10, use8K},
		{"32K", 32 << 10, use24K},
		{"64K", 64 << 10, use56K},
		{"128K", 128 << 10, use112K},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if moved := stackMoves(tc.reserve, tc.deep); moved {
				t.Errorf("ReserveStack(%d): the stack still moved for a call needing less", tc.reserve)
			}
			if moved := stackMoves(0, tc.deep); !moved {
				t.Errorf("control: a fresh goroutine's stack did not move for a call of this depth; the test proves nothing")
			}
		})
	}
}

// stackMoves reports whether, in a fresh goroutine that reserved
// reserve bytes, deep moved the stack.
func stackMoves(reserve int, deep func() byte) bool {
	moved := make(chan bool)
	go func() {
		ReserveStack(reserve)
		var x byte
		before := uintptr(unsafe.Pointer(&x))
		x = deep()
		moved <- uintptr(unsafe.Pointer(&x)) != before
	}()
	return <-moved
}

// The use functions write a frame of about their size, as real callers do.

//go:noinline
func use8K() byte { var b [8 << 10]byte; return fill(b[:]) }

//go:noinline
func use24K() byte { var b [24 << 10]byte; return fill(b[:]) }

//go:noinline
func use56K() byte { var b [56 << 10]byte; return fill(b[:]) }

//go:noinline
func use112K() byte { var b [112 << 10]byte; return fill(b[:]) }

//go:noinline
func fill(b []byte) byte {
	for i := range b {
		b[i] = byte(i)
	}
	return b[len(b)-1]
}
