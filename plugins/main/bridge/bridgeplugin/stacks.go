package bridgeplugin

// The stacks bridge's goroutines reach, reserved at each one's start with
// oneproc.ReserveStack so that each grows once, while it is shallow.

// netlinkStack is what a goroutine that asks the kernel over netlink
// reaches: the netlink package's 64 KiB receive buffer lies on its stack.
const netlinkStack = 128 << 10

// ipamStack is what an in-process IPAM ADD reaches (host-local's records
// and its JSON).
const ipamStack = 16 << 10

// MainStack is what the main goroutine reaches in one command.
func MainStack(command string) int {
	switch command {
	case "ADD", "DEL", "CHECK":
		return netlinkStack
	}
	return 0
}
