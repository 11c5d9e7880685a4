package bridgeplugin

import "github.com/dockernet/cni-plugins/plugins/pkg/oneproc"

// The stacks bridge's goroutines reach, reserved at each one's start with
// oneproc.ReserveStack so that each grows once, while it is shallow: the
// ones that ask the kernel over netlink reach oneproc.NetlinkStack.

// ipamStack is what an in-process IPAM ADD reaches (host-local's records
// and its JSON).
const ipamStack = 16 << 10

// MainStack is what the main goroutine reaches in one command.
func MainStack(command string) int {
	switch command {
	case "ADD", "DEL", "CHECK":
		return oneproc.NetlinkStack
	}
	return 0
}
