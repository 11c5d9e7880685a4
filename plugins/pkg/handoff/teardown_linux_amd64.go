package handoff

import (
	"syscall"
	"unsafe"
)

// childStack is the stack pointer the child starts with: it makes its
// system calls from registers and reads into its stack only what no one
// writes, but it must not be left on a goroutine's stack.
var childStack [64]uint64

func teardown() {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return
	}
	// The child must not hold the runtime's pipes open: it closes what it
	// inherits, but the runtime would wait for that; these two go now.
	syscall.Close(1)
	syscall.Close(2)
	startChild(uintptr(p[0]))
	syscall.Close(p[0])
	// p[1] stays open until this process exits: then the child's read of
	// p[0] ends, and the child exits.
}

// startChild clones the waiting child with every signal blocked on this
// thread, as bridge's veth deleter: no signal may reach the child, which
// runs none of Go's handlers.
//
//go:nosplit
func startChild(fd uintptr) {
	all, old := ^uint64(0), uint64(0)
	if _, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, 2 /* SIG_SETMASK */, uintptr(unsafe.Pointer(&all)), uintptr(unsafe.Pointer(&old)), 8, 0, 0); e != 0 {
		return
	}
	top := uintptr(unsafe.Pointer(&childStack[len(childStack)-2])) &^ 15
	cloneWait(top, fd)
	syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, 2, uintptr(unsafe.Pointer(&old)), 0, 8, 0, 0)
}

// cloneWait is in teardown_linux_amd64.s: a child that shares this
// address space (CLONE_VM, a process of its own) keeps only fd, as its
// descriptor 0, calls setsid, reads fd until its writers are gone and
// exits.
//
//go:noescape
func cloneWait(stack, fd uintptr) (pid, errno uintptr)
