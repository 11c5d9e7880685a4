// Command bridge is the bridge CNI plugin.
package main

import (
	"os"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/dockernet/cni-plugins/plugins/main/bridge/bridgeplugin"
	"github.com/dockernet/cni-plugins/plugins/pkg/buildinfo"
	"github.com/dockernet/cni-plugins/plugins/pkg/handoff"
	"github.com/dockernet/cni-plugins/plugins/pkg/oneproc" // one P, from an early init: see its doc
	"github.com/dockernet/cni-plugins/plugins/pkg/timeline"
)

func main() {
	timeline.Mark("main")
	command := os.Getenv("CNI_COMMAND")
	oneproc.Prefault(bridgeplugin.FreshHeap(command))
	oneproc.ReserveStack(bridgeplugin.MainStack(command))
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    bridgeplugin.Add,
		Check:  bridgeplugin.Check,
		Del:    bridgeplugin.Del,
		GC:     bridgeplugin.GC,
		Status: bridgeplugin.Status,
	}, buildinfo.Versions, buildinfo.About("bridge"))
	timeline.Flush() // only on success: an error exits inside skel
	handoff.Teardown()
}
