package vmchild

import (
	"syscall"
	"unsafe"
)

// childStack is the stack pointer every child starts with. A child makes
// its calls from registers; Wait's reads into it what no one writes. It
// must not be left on the stack of the parent's goroutine.
var childStack [64]uint64

// Write starts a child that writes n bytes at p to fd and exits, and
// returns its pid. The memory at p must stay as it is until the child
// has written it: keep it reachable.
//
//go:nosplit
//go:norace
func Write(fd, p, n uintptr) (pid uintptr, errno syscall.Errno) {
	return start(fd, p, n, 0)
}

// Wait starts a child that reads fd until no process holds its other
// end, then exits, and returns its pid: given the read end of a pipe the
// parent holds, the child exits after the parent.
//
//go:nosplit
//go:norace
func Wait(fd uintptr) (pid uintptr, errno syscall.Errno) {
	return start(fd, 0, 0, 1)
}

// start clones with every signal blocked on this thread across the
// clone; nosplit so that nothing here grows the stack or is preempted.
//
//go:nosplit
//go:norace
func start(fd, p, n, wait uintptr) (pid uintptr, errno syscall.Errno) {
	old, e := BlockSignals()
	if e != 0 {
		return 0, e
	}
	top := uintptr(unsafe.Pointer(&childStack[len(childStack)-2])) &^ 15
	pid, cerr := clone1(top, fd, p, n, wait)
	RestoreSignals(old)
	return pid, syscall.Errno(cerr)
}

// clone1 is in vmchild_linux_amd64.s. The child keeps only fd, as its
// descriptor 0 (it has every descriptor the parent had, the runtime's
// pipes among them, whose readers wait for all of them to close), calls
// setsid, then writes n bytes at p to it (wait 0) or reads it to its end
// (wait 1), and exits.
//
//go:noescape
func clone1(stack, fd, p, n, wait uintptr) (pid, errno uintptr)
