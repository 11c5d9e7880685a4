package bridgeplugin

import (
	"syscall"
	"unsafe"
)

// childStack is the stack pointer the deleter starts with. It never uses
// it (it makes system calls from registers only, with every signal
// blocked), but a child sharing the parent's address space must not be
// left on the stack of the parent's goroutine.
var childStack [64]uint64

// forkWrite starts a child that shares this address space (CLONE_VM, as
// a vfork, but without stopping the parent): the child writes n bytes at
// p to fd and exits, the parent returns the child's pid. A fork would
// copy the page tables of the whole Go process and make every page the
// parent writes afterwards fault again, copied; this copies nothing. The
// child's instructions are cloneWrite's, in assembly: Go code cannot run
// on the parent's memory beside the parent. Signals are blocked on this
// thread across the clone so that none reaches the child before it
// exits; nosplit so that nothing here grows the stack or is preempted.
//
//go:nosplit
//go:norace
func forkWrite(fd, p, n uintptr) (pid uintptr, errno syscall.Errno) {
	old, e := blockSignals()
	if e != 0 {
		return 0, e
	}
	top := uintptr(unsafe.Pointer(&childStack[len(childStack)-2])) &^ 15
	pid, cerr := cloneWrite(top, fd, p, n)
	restoreSignals(old)
	return pid, syscall.Errno(cerr)
}

// cloneWrite is in link_deleter_amd64.s. The child keeps only fd, as its
// descriptor 0 (it has every descriptor the parent had, the runtime's
// pipes among them, whose readers wait for all of them to close), calls
// setsid, writes and exits.
//
//go:noescape
func cloneWrite(stack, fd, p, n uintptr) (pid, errno uintptr)
