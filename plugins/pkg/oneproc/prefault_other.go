//go:build !linux

package oneproc

// Prefault does nothing off Linux.
func Prefault(n int) {}

func startHeap() {}
