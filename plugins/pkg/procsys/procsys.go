// Package procsys reads and writes kernel parameters under /proc/sys.
//
// Why not utils/sysctl: it reads every value back after writing it, a
// second path lookup. Lookups under /proc/sys grow with the number of
// network namespaces on the machine: each netns has its own net/, ipv6/,
// conf/ and eth0/ entries, all alike in name, and the kernel compares a
// name against every one of them, so each lookup saved counts.
package procsys

import (
	"os"
	"strings"
)

// Set writes value to the parameter key ("net/ipv4/ip_forward"), in the
// network namespace of the calling thread, with a single open.
func Set(key, value string) error {
	f, err := os.OpenFile("/proc/sys/"+key, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(value)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	return werr
}

// Get reads the parameter key, trimmed; "" when it cannot be read.
func Get(key string) string {
	v, _ := os.ReadFile("/proc/sys/" + key)
	return strings.TrimSpace(string(v))
}
