package bridgeplugin

// FreshHeap is how much fresh heap (spans and goroutine stacks) one
// command of bridge writes after the package inits, for
// oneproc.Prefault: ADD makes links, addresses, records and a netfilter
// transaction, and grows three goroutine stacks to hold the netlink
// package's receive buffer; DEL and CHECK do about half that. A larger
// figure costs the kernel's filling of pages no one writes, a smaller
// one page faults.
func FreshHeap(command string) int {
	switch command {
	case "ADD":
		return 2 << 20
	case "DEL", "CHECK":
		return 1 << 20
	}
	return 0
}
