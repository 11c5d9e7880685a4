//go:build linux && !amd64

package oneproc

// hugeHeap asks for nothing where the huge page size is not known to be
// 2 MiB (arm64's depends on its base page size).
func hugeHeap(uintptr) {}
