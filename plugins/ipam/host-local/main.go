// Command host-local is the host-local IPAM plugin.
package main

import (
	_ "github.com/dockernet/cni-plugins/plugins/pkg/oneproc" // one P, from an early init: see its doc

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/dockernet/cni-plugins/plugins/ipam/host-local/hostlocal"
	"github.com/dockernet/cni-plugins/plugins/pkg/buildinfo"
	"github.com/dockernet/cni-plugins/plugins/pkg/timeline"
)

func main() {
	timeline.Mark("main")
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    hostlocal.Add,
		Check:  hostlocal.Check,
		Del:    hostlocal.Del,
		GC:     hostlocal.GC,
		Status: hostlocal.Status,
	}, buildinfo.Versions, buildinfo.About("host-local"))
	timeline.Flush() // only on success: an error exits inside skel
}
