//go:build !(linux && amd64)

package vmchild

import "syscall"

// Supported: no children sharing the address space here (no assembly).
const Supported = false

// Write is not available here: callers fork instead.
func Write(fd, p, n uintptr) (pid uintptr, errno syscall.Errno) { return 0, syscall.ENOSYS }

// Wait is not available here.
func Wait(fd uintptr) (pid uintptr, errno syscall.Errno) { return 0, syscall.ENOSYS }
