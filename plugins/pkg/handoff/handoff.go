// Package handoff lets a plugin process that has written its result
// exit without tearing down its own address space: the kernel unmaps a
// process's memory before it tells the parent the process is gone, and
// on a VM whose page tables the hypervisor shadows that is a large part
// of the time from a plugin's last instruction to the runtime's wait.
// Teardown starts a child that shares the address space and waits, with
// every descriptor closed but one end of a pipe, until the plugin has
// exited; the last of the two to exit unmaps the memory, and that is the
// child, after the runtime has been told.
//
// The child outlives the plugin, so the host's init (or the nearest
// subreaper) must reap it: Teardown does nothing until Allow has been
// called, which a plugin does only where the host's records say that a
// child left by a DEL was seen reaped (attachment.HostEnv.Reaps, the
// mark bridge's DEL leaves). Everywhere but linux/amd64 it does nothing.
package handoff

var allowed bool

// Allow lets Teardown start its child: the host reaps orphans.
func Allow() { allowed = true }

// AllowIf is Allow when reaps says the host reaps orphans. Where Teardown
// starts no child, reaps is not called: its answer (the host's records)
// would change nothing.
func AllowIf(reaps func() bool) {
	if hands && reaps() {
		Allow()
	}
}

// Teardown hands the address space's teardown to a child, when allowed,
// and closes stdout and stderr (the runtime reads them until no process
// holds them). Call it last, after the result is written: nothing may be
// printed after it.
func Teardown() {
	if !allowed {
		return
	}
	teardown()
}
