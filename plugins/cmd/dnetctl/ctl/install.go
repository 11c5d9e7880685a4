package ctl

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/dockernet/cni-plugins/plugins/pkg/install"
)

// runInstall is `dnetctl install`: the plugins into the runtime's plugin
// directory and one conflist, for this host, into its conflist directory.
func runInstall(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("install", flag.ContinueOnError)
	fs.SetOutput(stderr)
	self, _ := os.Executable()
	src := fs.String("bin-src", filepath.Dir(self), "where the built plugins are")
	binDir := fs.String("bin-dir", "/opt/cni/bin", "the runtime's plugin directory")
	confDir := fs.String("conf-dir", "/etc/cni/net.d", "the runtime's conflist directory")
	conflist := fs.String("conflist", "", "the conflist to install (one of conf/)")
	subnet := fs.String("subnet", "", "the network's subnet, used as given (default: the conflist's, or a free one if this host uses it)")
	bridge := fs.String("bridge", "", "the bridge's name, used as given (default: the conflist's, or a free one if this host has it)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *conflist == "" {
		fmt.Fprintln(stderr, "dnetctl install: -conflist FILE is required (e.g. conf/10-docker0.conflist)")
		return 2
	}
	tmpl, err := os.ReadFile(*conflist)
	if err != nil {
		fmt.Fprintln(stderr, "dnetctl install:", err)
		return 1
	}
	res, err := install.Run(install.Options{
		SrcBin: *src, Plugins: install.PluginBinaries, BinDir: *binDir, ConfDir: *confDir,
		Template: tmpl, FileName: filepath.Base(*conflist), Subnet: *subnet, Bridge: *bridge, Log: stdout,
	}, install.NetlinkHost{})
	if err != nil {
		fmt.Fprintln(stderr, "dnetctl install:", err)
		return 1
	}
	written := "nothing changed"
	if len(res.Written) > 0 {
		written = "wrote " + strings.Join(res.Written, ", ")
	}
	fmt.Fprintf(stdout, "install: network %s on bridge %s, %s: %s\n", res.Network, res.Bridge, res.Subnet, written)
	return 0
}
