// Command dnetctl is the operator's view of what the plugins installed:
// list, check, restore after a firewall flush, and GC. See package ctl.
package main

import (
	"os"

	"github.com/dockernet/cni-plugins/plugins/cmd/dnetctl/ctl"
)

func main() { os.Exit(ctl.Main(os.Args[1:], os.Stdout, os.Stderr)) }
