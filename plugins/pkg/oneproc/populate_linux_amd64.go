package oneproc

import "syscall"

// A plugin process's first touch of each page of its binary is a page
// fault: the runtime's start and the package inits read code and tables
// scattered over the text and read-only data (the kernel maps 16 pages
// around each fault), and write pages of data and bss. In a virtual
// machine that shadows the guest's page tables, each fault costs the
// guest a trip through the hypervisor (make bench-timeline). The entry
// stub has the kernel map them all at once instead, before the runtime
// starts: the code and read-only data from the page cache
// (MADV_POPULATE_READ), the data and the small variables of bss written
// (MADV_POPULATE_WRITE). The linker orders bss by size, so the small
// variables the runtime and the inits write come first and the large
// arrays last (a 32 MiB FIPS buffer, the runtime's cgroup scratch): the
// stub stops smallBSS past the end of bss. Kernels before 5.14 refuse
// the advice and the pages fault as before.

const (
	pageSize         = 4096
	madvPopulateRead = 22 // MADV_POPULATE_READ; the write one is in prefault_linux.go
	smallBSS         = 64 << 10
)

// Written by entry, before the runtime starts: each madvise's return, 0
// or a negated errno.
var populatedCode, populatedData int64

// Populated is what the kernel said to the entry stub's advice: nil when
// it mapped both ranges (or the binary was not linked at Entry and there
// was nothing to say), else the first refusal (EINVAL before Linux 5.14).
func Populated() error {
	for _, r := range []int64{populatedCode, populatedData} {
		if r < 0 {
			return syscall.Errno(-r)
		}
	}
	return nil
}
