// Package oneproc runs a plugin process on one P (GOMAXPROCS 1) unless
// its environment sets GOMAXPROCS. A plugin lives for a few milliseconds
// and spends them in system calls, mostly from one goroutine: a second P
// buys that goroutine nothing but costs a thread woken on another CPU at
// each goroutine's start and park. Each plugin main imports it; its init
// runs early (it needs only runtime and syscall), before most of the
// other packages' inits. Where two goroutines do work side by side,
// Beside gives them a P each.
//
// An init runs too late to stop the runtime from starting with a P per
// CPU and waking a thread for the second before any init: a binary
// linked with -E set to Entry (the Makefile links the plugins so) starts
// at a stub that pins the process to its CPU until this package's init
// puts the affinity back, so the runtime counts one CPU and starts with
// one P. The stub first has the kernel map the binary's code and data in
// two calls, where the runtime's start would fault them in page by page
// (populate_linux_amd64.go).
//
// The init also asks for huge pages for the heap where the kernel gives
// them (hugepage_linux_amd64.go) and has the kernel fill the heap's next
// pages at once (Prefault), and a plugin's main asks for more before a
// command that writes more; then it grows the main goroutine's stack in
// one step (ReserveStack), as a plugin's main does again for a command
// that goes deeper.
package oneproc

import (
	"runtime"
	"syscall"
)

func init() {
	env, _ := syscall.Getenv("GOMAXPROCS")
	if n := procs(env); n > 0 {
		runtime.GOMAXPROCS(n)
	}
	// After GOMAXPROCS is set: the runtime leaves a set value alone when
	// it next looks at the CPUs it may use.
	restoreAffinity()
	startHeap()
	ReserveStack(mainStack) // on the pages just filled
}

// procs is the GOMAXPROCS to set, given the environment's: 1, or 0 (leave
// the runtime's) when the environment names one. An empty value is unset
// for the runtime too.
func procs(env string) int {
	if env != "" {
		return 0
	}
	return 1
}

// Beside gives the process a second P, from now on, for a goroutine that
// works beside the main one (bridge's IPAM beside its link work). On one
// P the two take turns: a goroutine in a system call keeps its P until
// sysmon takes it back, 20 µs or more later, and most of a plugin's calls
// are shorter. Nothing changes when the environment set GOMAXPROCS or
// the machine has one CPU.
func Beside() {
	if env, _ := syscall.Getenv("GOMAXPROCS"); env == "" && cpus() > 1 && runtime.GOMAXPROCS(0) < 2 {
		runtime.GOMAXPROCS(2)
	}
}

// cpus is how many CPUs the process may run on: the runtime counts one
// when the entry stub pinned the process for its start.
func cpus() int {
	if n := startCPUs(); n > 0 {
		return n
	}
	return runtime.NumCPU()
}
