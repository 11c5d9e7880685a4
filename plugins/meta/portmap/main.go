// Command portmap is the portmap CNI plugin.
package main

import (
	_ "github.com/dockernet/cni-plugins/plugins/pkg/oneproc" // one P, from an early init: see its doc

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/dockernet/cni-plugins/plugins/meta/portmap/portmapplugin"
	"github.com/dockernet/cni-plugins/plugins/pkg/buildinfo"
	"github.com/dockernet/cni-plugins/plugins/pkg/handoff"
	"github.com/dockernet/cni-plugins/plugins/pkg/timeline"
)

func main() {
	timeline.Mark("main")
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    portmapplugin.Add,
		Check:  portmapplugin.Check,
		Del:    portmapplugin.Del,
		GC:     portmapplugin.GC,
		Status: portmapplugin.Status,
	}, buildinfo.Versions, buildinfo.About("portmap"))
	timeline.Flush() // only on success: an error exits inside skel
	handoff.Teardown()
}
