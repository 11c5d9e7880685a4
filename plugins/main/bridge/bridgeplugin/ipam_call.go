package bridgeplugin

import (
	"net"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/dockernet/cni-plugins/plugins/pkg/oneproc"
)

// ipamCall is an IPAM ADD running in the background.
type ipamCall struct {
	n    *NetConf
	args *skel.CmdArgs
	done chan struct{}
	res  types.Result
	err  error

	firstUse []net.IP // addresses never handed out before (in-process host-local only)
}

// startIPAM starts the IPAM plugin's ADD; a layer-2 network has none.
func startIPAM(n *NetConf, args *skel.CmdArgs) *ipamCall {
	c := &ipamCall{n: n, args: args, done: make(chan struct{})}
	if !n.isLayer3() {
		close(c.done)
		return c
	}
	oneproc.Beside()
	go func() {
		defer close(c.done)
		oneproc.ReserveStack(ipamStack)
		c.res, c.firstUse, c.err = ipamAdd(n, args)
	}()
	return c
}

func (c *ipamCall) wait() (types.Result, error) {
	<-c.done
	return c.res, c.err
}

// release waits for the call and gives back what it reserved, if anything.
func (c *ipamCall) release() {
	if _, err := c.wait(); err == nil && c.n.isLayer3() {
		_ = ipamDel(c.n, c.args)
	}
}
