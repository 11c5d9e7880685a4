//go:build linux && !amd64

package vmchild

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// Write forks where there is no assembly for a child sharing the address
// space: the child, a copy of the process, writes n bytes at p to fd and
// exits, the parent returns the child's pid. Signals are blocked on this thread
// across the fork so that none reaches the child before it exits (Go's
// handlers are not for a copy of the process); nosplit so that nothing
// here grows the stack or can be preempted.
//
//go:nosplit
//go:norace
func Write(fd, p, n uintptr) (pid uintptr, errno syscall.Errno) {
	old, e := BlockSignals()
	if e != 0 {
		return 0, e
	}
	pid, _, errno = syscall.RawSyscall6(unix.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if errno != 0 || pid != 0 {
		RestoreSignals(old)
		return pid, errno
	}
	// The child has every descriptor the parent had, the runtime's pipes
	// among them, whose readers wait for all of them to close: it keeps
	// only the socket, as its descriptor 0.
	if fd != 0 {
		syscall.RawSyscall(unix.SYS_DUP3, fd, 0, 0)
	}
	if _, _, e := syscall.RawSyscall(unix.SYS_CLOSE_RANGE, 1, ^uintptr(0)>>32, 0); e != 0 { // before Linux 5.9
		for i := uintptr(1); i < 4096; i++ {
			syscall.RawSyscall(unix.SYS_CLOSE, i, 0, 0)
		}
	}
	syscall.RawSyscall(unix.SYS_SETSID, 0, 0, 0)
	syscall.RawSyscall(unix.SYS_WRITE, 0, p, n)
	for {
		syscall.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
	}
}

// Wait is not available here: a copy of the process would not keep the
// parent's address space alive.
func Wait(fd uintptr) (pid uintptr, errno syscall.Errno) { return 0, syscall.ENOSYS }
