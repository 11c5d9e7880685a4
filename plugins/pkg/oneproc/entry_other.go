//go:build !(linux && amd64)

package oneproc

// Entry is empty where there is no entry stub: build plugin binaries
// without -E.
const Entry = ""

func startCPUs() int   { return 0 }
func restoreAffinity() {}

// Populated is nil: there is no stub to map the binary.
func Populated() error { return nil }
