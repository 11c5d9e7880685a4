// Package buildinfo holds what every plugin binary says about itself.
package buildinfo

import "github.com/containernetworking/cni/pkg/version"

// Versions are the CNI spec versions every plugin here speaks: all of
// them, 0.1.0 through 1.1.0, as the reference plugins do. Conflists of
// 0.1.0 and 0.2.0 still exist (examples, older tools, other plugins that
// call host-local as their IPAM), and a drop-in must not refuse them.
var Versions = version.All

// Version is set at link time by the Makefile.
var Version = "dev"

// About is the line printed when a plugin runs without CNI_COMMAND.
func About(plugin string) string { return "dockernet CNI plugin " + plugin + " " + Version }
