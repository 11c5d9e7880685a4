package oneproc

import "syscall"

// A transparent huge page is one page fault where its 512 small pages are
// 512 (prefault_linux.go). Kernels mostly give huge pages only to ranges
// that ask for them (transparent_hugepage/enabled "madvise", Debian's and
// Ubuntu's default), and the runtime asks for none. hugeHeap asks for the
// heap's current chunk, from the 2 MiB around the heap's front to the
// chunk's end (MADV_HUGEPAGE): the next 2 MiB comes as one huge page at
// its first write. The runtime and the earlier inits have written part of
// the 2 MiB around the front, so the kernel makes that one a huge page at
// once (MADV_COLLAPSE, Linux 6.1), copying what is there. A plugin holds
// one or two huge pages where it wrote 1-3 MiB of small ones.
//
// GODEBUG=disablethp=1, the runtime's switch for keeping huge pages off
// its heap, keeps this off too. Where the kernel refuses, the heap's
// pages fault one by one as before; the kernel's THP settings (enabled,
// defrag) decide the rest, as for any program that asks.

const (
	hugePageSize = 2 << 20 // a PMD on amd64
	madvHugepage = 14      // MADV_HUGEPAGE
	madvCollapse = 25      // MADV_COLLAPSE
)

// hugeErr is what hugeHeap was told: nil when the kernel took both
// advices, errTHPOff under GODEBUG=disablethp=1, else the first refusal.
// hugeFront is the heap's front it was given (the heap may have grown
// past that chunk by the time anyone looks).
var (
	hugeErr   error
	hugeFront uintptr
)

var errTHPOff = syscall.Errno(syscall.ENOTSUP)

func hugeHeap(front uintptr) {
	hugeFront = front
	if godebug, _ := syscall.Getenv("GODEBUG"); disableTHP(godebug) {
		hugeErr = errTHPOff
		return
	}
	first := front &^ (hugePageSize - 1)
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, first, chunkEnd(front)-first, madvHugepage); errno != 0 {
		hugeErr = errno
		return
	}
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, first, hugePageSize, madvCollapse); errno != 0 {
		hugeErr = errno
	}
}

// disableTHP reads GODEBUG as the runtime does for disablethp: the last
// setting wins. Byte by byte, to keep this package's imports to runtime
// and syscall (its init runs early).
func disableTHP(godebug string) bool {
	off := false
	for start := 0; start <= len(godebug); {
		end := start
		for end < len(godebug) && godebug[end] != ',' {
			end++
		}
		switch godebug[start:end] {
		case "disablethp=1":
			off = true
		case "disablethp=0":
			off = false
		}
		start = end + 1
	}
	return off
}
