package oneproc

// A goroutine starts with a 2 KiB stack and doubles it each time a call
// needs more: the runtime allocates the larger stack, copies the old one
// and walks every frame on it to adjust its pointers, decoding each
// function's tables as it goes. The main goroutine of a plugin goes
// 2 -> 4 -> 8 -> 16 -> 32 KiB through the package inits and a JSON
// config, and bridge's on to 128 KiB for the netlink package's receive
// buffer: four or five copies of an ever deeper stack, each on fresh
// pages. Reserving the stack at once, while it is shallow, costs one
// copy of a few frames; the pages below are written only when a call
// reaches them, as before.

// mainStack is what init reserves for every plugin's main goroutine.
const mainStack = 32 << 10

// NetlinkStack is what a goroutine reaches that asks the kernel over
// netlink: the netlink package's 64 KiB receive buffer lies on its stack.
const NetlinkStack = 128 << 10

// reserveOff is false; the reserving functions test it so that the
// compiler keeps their large frame but the frame is never written.
var reserveOff bool

// ReserveStack grows the calling goroutine's stack to hold at least n
// bytes more than it uses now, rounded up to 16, 32 or 128 KiB (the sizes
// the plugins ask for), in a single step. The stack is never made smaller
// while the process runs.
func ReserveStack(n int) {
	switch {
	case n <= 0:
	case n <= 16<<10:
		reserve16K()
	case n <= 32<<10:
		reserve32K()
	default:
		reserve128K()
	}
}

// Each reserveNK has a frame of about N KiB less the room the runtime
// keeps below a frame, so that its call grows the stack to the next
// power of two that holds it and no further. The array is declared in a
// branch that never runs: the runtime sizes the stack by the frame,
// while only a write would touch its pages.

//go:noinline
func reserve16K() {
	if reserveOff {
		var pad [12 << 10]byte
		keep(pad[:])
	}
}

//go:noinline
func reserve32K() {
	if reserveOff {
		var pad [24 << 10]byte
		keep(pad[:])
	}
}

//go:noinline
func reserve128K() {
	if reserveOff {
		var pad [120 << 10]byte
		keep(pad[:])
	}
}

//go:noinline
func keep([]byte) {}
