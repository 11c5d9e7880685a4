// Package buildinfo holds what every plugin binary says about itself.
package buildinfo

import "github.com/containernetworking/cni/pkg/version"

// Versions are the CNI spec versions every plugin here speaks.
var Versions = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

// Version is set at link time by the Makefile.
var Version = "dev"

// About is the line printed when a plugin runs without CNI_COMMAND.
func About(plugin string) string { return "dockernet CNI plugin " + plugin + " " + Version }
