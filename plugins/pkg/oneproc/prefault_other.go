//go:build !linux

package oneproc

const initHeap = 0

// Prefault does nothing off Linux.
func Prefault(n int) {}
