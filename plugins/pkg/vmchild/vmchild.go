// Package vmchild starts children that share the parent's address space
// (CLONE_VM, a process of their own, the parent not stopped) and make a
// few raw system calls from registers: they keep one descriptor, as their
// descriptor 0, call setsid, make one call on it and exit. Go code cannot
// run in such a child beside the parent, so the child is a few assembly
// instructions (amd64); starting one copies nothing, where a fork would
// copy the page tables and make every page the parent writes afterwards
// fault again. On other arches Write forks (vmchild_fork.go) and Wait is
// unavailable. bridge's DEL starts one to delete a veth pair (Write),
// handoff one to outlive the plugin (Wait).
package vmchild

import (
	"syscall"
	"unsafe"
)

// BlockSignals blocks every signal on this thread and returns the mask it
// had, for the span of a clone or fork: no signal may reach a child,
// which runs none of Go's handlers. nosplit, as its callers.
//
//go:nosplit
func BlockSignals() (old uint64, errno syscall.Errno) {
	all := ^uint64(0)
	_, _, errno = syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, 2 /* SIG_SETMASK */, uintptr(unsafe.Pointer(&all)), uintptr(unsafe.Pointer(&old)), 8, 0, 0)
	return old, errno
}

// RestoreSignals puts back the mask BlockSignals returned.
//
//go:nosplit
func RestoreSignals(old uint64) {
	syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, 2, uintptr(unsafe.Pointer(&old)), 0, 8, 0, 0)
}
