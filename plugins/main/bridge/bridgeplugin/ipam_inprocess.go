package bridgeplugin

import (
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/dockernet/cni-plugins/plugins/ipam/host-local/hostlocal"
	"github.com/dockernet/cni-plugins/plugins/pkg/buildinfo"
)

// The IPAM plugin is a process of its own, started by bridge: a Go
// process takes about as long to start as bridge's own link work, so
// bridge waited for it on every ADD (make bench-timeline). When the
// plugin the runtime's CNI_PATH names for the IPAM type is our own
// host-local, installed beside this bridge (one install writes both) and
// built by the same toolchain with the same settings, bridge runs the
// same code in process instead: same config, same CNI_ARGS, same store
// and locks, same result and errors. Any other IPAM plugin, a host-local
// elsewhere, or DNET_IPAM_EXEC=1 in the environment, and it is started
// as always.

// hostLocalMain is the main package of our host-local binary.
const hostLocalMain = "github.com/dockernet/cni-plugins/plugins/ipam/host-local"

// inProcess holds, per IPAM type, what this process decided: a command
// decides once, so an ADD's undo releases its addresses the way it
// reserved them, and the plugin binary is read once.
var inProcess sync.Map

// ipamInProcess reports, once per process and type, whether typ's plugin
// runs in this process (decideInProcess).
func ipamInProcess(typ string) bool {
	if v, ok := inProcess.Load(typ); ok {
		return v.(bool)
	}
	v, _ := inProcess.LoadOrStore(typ, decideInProcess(typ))
	return v.(bool)
}

// decideInProcess reports whether typ's plugin, as CNI_PATH finds it, is
// our host-local, beside this binary and built as it was.
func decideInProcess(typ string) bool {
	if typ != "host-local" || os.Getenv("DNET_IPAM_EXEC") == "1" {
		return false
	}
	path, err := findPlugin(typ)
	if err != nil {
		return false
	}
	if path, err = filepath.EvalSymlinks(path); err != nil {
		return false
	}
	self, err := os.Executable()
	if err != nil {
		return false
	}
	if self, err = filepath.EvalSymlinks(self); err != nil || filepath.Dir(self) != filepath.Dir(path) {
		return false
	}
	theirs, err := buildinfo.ReadFile(path)
	if err != nil || theirs.Path != hostLocalMain {
		return false
	}
	mine, ok := debug.ReadBuildInfo()
	return ok && sameBuild(theirs, mine)
}

// sameBuild: one toolchain, one version of this module, the same
// settings, and the same version of every module both link.
func sameBuild(a, b *debug.BuildInfo) bool {
	same := func(x, y *debug.Module) bool { return x.Path == y.Path && x.Version == y.Version && x.Sum == y.Sum }
	if a.GoVersion != b.GoVersion || !same(&a.Main, &b.Main) || !slices.Equal(a.Settings, b.Settings) {
		return false
	}
	versions := map[string]*debug.Module{}
	for _, m := range b.Deps {
		versions[m.Path] = m
	}
	for _, m := range a.Deps {
		if v, ok := versions[m.Path]; ok && !same(v, m) {
			return false
		}
	}
	return true
}

// ipamAdd runs the IPAM plugin's ADD, in process where it can be; then
// it also says which addresses are first uses (never handed out before,
// so no neighbour can hold a stale entry for them).
func ipamAdd(n *NetConf, args *skel.CmdArgs) (res types.Result, firstUse []net.IP, err error) {
	if !ipamInProcess(n.IPAM.Type) {
		res, err = execIPAMAdd(n.IPAM.Type, args.StdinData)
		return res, nil, err
	}
	conf, _, err := hostlocal.LoadConfig(args.StdinData, args.Args)
	if err != nil {
		return nil, nil, err
	}
	result, firstUse, err := hostlocal.AllocateNoting(conf, args.ContainerID, args.IfName)
	if err != nil {
		return nil, nil, err
	}
	return result, firstUse, nil
}

// ipamDel runs its DEL, in process where it can be.
func ipamDel(n *NetConf, args *skel.CmdArgs) error {
	if ipamInProcess(n.IPAM.Type) {
		return hostlocal.Del(args)
	}
	_, err := execIPAM(n.IPAM.Type, "DEL", args.StdinData)
	return err
}

// ipamCheck runs its CHECK, in process where it can be.
func ipamCheck(n *NetConf, args *skel.CmdArgs) error {
	if ipamInProcess(n.IPAM.Type) {
		return hostlocal.Check(args)
	}
	_, err := execIPAM(n.IPAM.Type, "CHECK", args.StdinData)
	return err
}
