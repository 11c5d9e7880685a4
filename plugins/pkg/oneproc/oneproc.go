// Package oneproc runs a plugin process on one P (GOMAXPROCS 1) unless
// its environment sets GOMAXPROCS. A plugin lives for a few milliseconds
// and spends them in system calls: a second P buys it no parallelism (a
// goroutine blocked in a call hands its P to the others) but costs a
// thread woken on another CPU at each goroutine's start and park. Each
// plugin main imports it; its init runs early (it needs only runtime and
// syscall), before most of the other packages' inits.
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
