package oneproc

import (
	"syscall"
	"unsafe"
)

// A plugin process writes each page of its heap for the first time: the
// runtime takes fresh memory from the kernel for every span and stack it
// makes, and a process that lives for milliseconds never collects one to
// use again. Each first write is a page fault, and a page fault is dear
// in a virtual machine that shadows the guest's page tables (make
// bench-timeline). Prefault has the kernel fill the pages that the next
// allocations will take in one system call instead, before they are
// written. The runtime hands out the lowest free pages of its heap first,
// so those are the pages just above a probe: a fresh object, never written
// itself.

// initHeap is what init prefaults for every plugin: the rest of the
// package inits and a light command (portmap without a mapping writes
// about 40 pages).
const initHeap = 256 << 10

// probeSize is past the largest size class (32 KiB), so the probe gets a
// span of its own, and under 16 pages, so that span comes from the block
// the P keeps aside for small spans: the probe ends where the next span
// starts.
const probeSize = 40 << 10

// madvPopulateWrite is MADV_POPULATE_WRITE (Linux 5.14): older kernels
// refuse it, and the pages fault as before.
const madvPopulateWrite = 23

// heapChunk is how the runtime maps its heap: 4 MiB at a time
// (pallocChunkBytes), each chunk aligned to its size. Past the end of the
// probe's chunk the runtime may not have mapped anything yet, so the range
// filled stops there. Large objects come from the lowest free pages past
// the P's block: above the probe too.
const heapChunk = 4 << 20

var probe []byte // on the heap, where it must be

// Prefault has the kernel fill the n bytes of fresh heap that the next
// allocations take (see above). A failure changes nothing but speed.
func Prefault(n int) { _, _, _ = prefault(n) }

// startHeap is init's step: huge pages for the heap's chunk where the
// kernel gives them (hugeHeap), then the fill of what init prefaults.
func startHeap() {
	front := heapFront()
	hugeHeap(front)
	_, _, _ = prefaultAt(front, initHeap)
}

// heapFront is where the heap's next allocations start: just past a probe.
func heapFront() uintptr {
	probe = make([]byte, probeSize)
	front := uintptr(unsafe.Pointer(unsafe.SliceData(probe))) + probeSize
	probe = nil
	return front
}

// prefault returns the range it filled, [start, end).
func prefault(n int) (start, end uintptr, err error) {
	if n <= 0 {
		return 0, 0, nil
	}
	return prefaultAt(heapFront(), n)
}

// prefaultAt fills n bytes from start, up to the end of start's chunk,
// and returns the range it filled.
func prefaultAt(start uintptr, n int) (uintptr, uintptr, error) {
	end := min(start+uintptr(n), chunkEnd(start))
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, start, end-start, madvPopulateWrite); errno != 0 {
		return start, start, errno
	}
	return start, end, nil
}

// chunkEnd is the end of the runtime's heap chunk that holds addr.
func chunkEnd(addr uintptr) uintptr { return (addr + heapChunk) &^ (heapChunk - 1) }
