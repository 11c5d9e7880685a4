//go:build linux && !amd64

package oneproc

// hugeCheck has nothing to report where hugeHeap asks for nothing;
// TestMain's child mode is shared by every Linux build of the tests.
func hugeCheck() {}
