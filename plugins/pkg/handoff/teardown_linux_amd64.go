package handoff

import (
	"syscall"

	"github.com/dockernet/cni-plugins/plugins/pkg/vmchild"
)

// hands says whether Teardown can start a child here.
const hands = true

func teardown() {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return
	}
	// The child must not hold the runtime's pipes open: it closes what it
	// inherits, but the runtime would wait for that; these two go now.
	syscall.Close(1)
	syscall.Close(2)
	vmchild.Wait(uintptr(p[0]))
	syscall.Close(p[0])
	// p[1] stays open until this process exits: then the child's read of
	// p[0] ends, and the child exits.
}
