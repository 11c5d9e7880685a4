// Command loopback is the loopback plugin.
package main

import (
	_ "github.com/dockernet/cni-plugins/plugins/pkg/oneproc" // one P, from an early init: see its doc

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/dockernet/cni-plugins/plugins/main/loopback/loopbackplugin"
	"github.com/dockernet/cni-plugins/plugins/pkg/buildinfo"
	"github.com/dockernet/cni-plugins/plugins/pkg/timeline"
)

func main() {
	timeline.Mark("main")
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    loopbackplugin.Add,
		Check:  loopbackplugin.Check,
		Del:    loopbackplugin.Del,
		GC:     func(*skel.CmdArgs) error { return nil },
		Status: loopbackplugin.Status,
	}, buildinfo.Versions, buildinfo.About("loopback"))
	timeline.Flush() // only on success: an error exits inside skel
}
