// Package install puts the plugins and a conflist on a node, for
// `make install` (through dnetctl install) and for the cluster installer
// image: binaries and the conflist are each written beside their target
// and renamed into place, so a runtime never reads half a file, and a
// second run that would change nothing writes nothing.
package install

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
)

// PluginBinaries are the plugins every install copies: the one list of
// them (make builds the folders they are in).
var PluginBinaries = []string{"bridge", "host-local", "portmap", "loopback"}

// Options says what to install where.
type Options struct {
	SrcBin   string   // the built plugins
	Plugins  []string // their names, copied into BinDir (PluginBinaries, or none)
	BinDir   string   // the runtime's plugin directory (/opt/cni/bin)
	ConfDir  string   // the runtime's conflist directory (/etc/cni/net.d)
	Template []byte   // the conflist to install (one of conf/)
	FileName string   // its name in ConfDir

	// Subnet, when set, is the network's subnet (a node's pod CIDR): it is
	// used as given, and an overlap with the host's addresses is an error.
	// Empty keeps the template's, or picks a free one if the host uses it.
	Subnet string
	// Bridge, when set, is the bridge's name, used as given.
	Bridge string
	// ClusterCIDR, when set, is the cluster's pod network: the bridge's
	// nonMasqueradeCIDRs, so that pods see each other's addresses.
	ClusterCIDR string
	// Exclusive refuses to write the conflist beside another network's:
	// a runtime uses the first conflist of the directory, so ours would
	// either take that network's pods or be ignored (the cluster
	// installer sets it; a single host may keep Podman's beside ours).
	Exclusive bool

	Log io.Writer // what was chosen and why
}

// Result is what was installed.
type Result struct {
	Network, Bridge, Subnet string
	Written                 []string // files changed; empty when all was in place
}

// Run installs per o, looking at host for the names and subnets in use.
func Run(o Options, host Host) (Result, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	conf, err := parseConflist(o.Template)
	if err != nil {
		return Result{}, fmt.Errorf("conflist template %s: %w", o.FileName, err)
	}
	target := filepath.Join(o.ConfDir, o.FileName)
	if err := checkConfDir(o, conf.name); err != nil {
		return Result{}, err
	}
	choice, err := choose(o, conf, target, host)
	if err != nil {
		return Result{}, err
	}
	res := Result{Network: conf.name, Bridge: choice.bridge, Subnet: choice.subnet}
	if err := conf.setClusterCIDR(o.ClusterCIDR, choice.subnet); err != nil {
		return res, err
	}
	rendered, err := conf.render(choice.bridge, choice.subnet)
	if err != nil {
		return res, err
	}
	if res.Written, err = Plugins(o); err != nil {
		return res, err
	}
	changed, err := writeAtomic(target, rendered, 0o644)
	if err != nil {
		return res, err
	}
	if changed {
		res.Written = append(res.Written, target)
	}
	return res, nil
}

// Plugins copies o.Plugins into o.BinDir and lists what changed. Alone it
// is the install for nodes whose conflist another component writes
// (flannel, k3s): ConfDir is left as it is.
func Plugins(o Options) ([]string, error) {
	var written []string
	for _, p := range o.Plugins {
		data, err := os.ReadFile(filepath.Join(o.SrcBin, p))
		if err != nil {
			return written, fmt.Errorf("plugin %s: %w (build it first: make build)", p, err)
		}
		changed, err := writeAtomic(filepath.Join(o.BinDir, p), data, 0o755)
		if err != nil {
			return written, err
		}
		if changed {
			written = append(written, filepath.Join(o.BinDir, p))
		}
	}
	return written, nil
}

// checkConfDir refuses to overwrite a file of ours' name that holds
// another network (someone else wrote it), and, when o.Exclusive, to
// write beside any other network's conflist.
func checkConfDir(o Options, network string) error {
	entries, err := os.ReadDir(o.ConfDir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".conf" && ext != ".conflist" && ext != ".json") {
			continue
		}
		path := filepath.Join(o.ConfDir, e.Name())
		theirs := networkName(path)
		switch {
		case e.Name() == o.FileName && theirs != network:
			return fmt.Errorf("%s holds network %q, not %q: another component wrote it, and it is left as it is; "+
				"install only the plugins (-binaries-only) or remove it", path, theirs, network)
		case o.Exclusive && e.Name() != o.FileName && theirs != network:
			return fmt.Errorf("%s (network %q) is another component's: the runtime uses the first conflist of %s, so a second one "+
				"would take that network's pods or be ignored; on a node whose network someone else writes (flannel, k3s), "+
				"install only the plugins (-binaries-only)", path, theirs, o.ConfDir)
		}
	}
	return nil
}

// networkName is the "name" of the network config at path, or a word
// saying it has none.
func networkName(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(unreadable)"
	}
	var c struct{ Name string }
	if json.Unmarshal(data, &c) != nil || c.Name == "" {
		return "(no name)"
	}
	return c.Name
}

// writeAtomic puts data at path through a temporary file in the same
// directory and a rename; it reports false, and writes nothing, when path
// already holds exactly data with that mode.
func writeAtomic(path string, data []byte, mode os.FileMode) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		if st, err := os.Stat(path); err == nil && st.Mode().Perm() == mode {
			return false, nil
		}
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return false, err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return true, nil
}

// conflist is the template, with where its bridge and subnet are.
type conflist struct {
	raw    map[string]any
	name   string
	bridge string
	subnet string
}

func parseConflist(data []byte) (*conflist, error) {
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	c := &conflist{raw: raw}
	c.name, _ = raw["name"].(string)
	br := c.bridgePlugin()
	if br == nil {
		return nil, errors.New(`no "bridge" plugin in "plugins"`)
	}
	c.bridge, _ = br["bridge"].(string)
	if c.bridge == "" {
		c.bridge = "cni0" // the bridge plugin's default
	}
	r := c.firstRange()
	if r == nil {
		return nil, errors.New(`the bridge's ipam has no "ranges"`)
	}
	c.subnet, _ = r["subnet"].(string)
	if _, _, err := net.ParseCIDR(c.subnet); err != nil {
		return nil, fmt.Errorf("the first range's subnet %q: %w", c.subnet, err)
	}
	return c, nil
}

func (c *conflist) bridgePlugin() map[string]any {
	plugins, _ := c.raw["plugins"].([]any)
	for _, p := range plugins {
		if m, ok := p.(map[string]any); ok && m["type"] == "bridge" {
			return m
		}
	}
	return nil
}

func (c *conflist) firstRange() map[string]any {
	ipam, _ := c.bridgePlugin()["ipam"].(map[string]any)
	ranges, _ := ipam["ranges"].([]any)
	if len(ranges) == 0 {
		return nil
	}
	set, _ := ranges[0].([]any)
	if len(set) == 0 {
		return nil
	}
	r, _ := set[0].(map[string]any)
	return r
}

// setClusterCIDR makes cidr the bridge's nonMasqueradeCIDRs, when given,
// and refuses a subnet outside the cluster's pod network the conflist
// names: masquerade would then hide that node's pods from the others.
func (c *conflist) setClusterCIDR(cidr, subnet string) error {
	br := c.bridgePlugin()
	if cidr != "" {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			return fmt.Errorf("cluster CIDR %q: %w", cidr, err)
		}
		br["nonMasqueradeCIDRs"] = []any{n.String()}
	}
	list, _ := br["nonMasqueradeCIDRs"].([]any)
	if len(list) == 0 {
		return nil
	}
	ip, _, err := net.ParseCIDR(subnet)
	if err != nil {
		return err
	}
	for _, v := range list {
		s, _ := v.(string)
		if _, n, err := net.ParseCIDR(s); err == nil && n.Contains(ip) {
			return nil
		}
	}
	return fmt.Errorf("the pod subnet %s is outside the cluster's pod network %v that the conflist leaves unmasqueraded: give the cluster CIDR (-cluster-cidr)", subnet, list)
}

// render is the template with bridge and subnet; a subnet that changed
// loses the template's gateway and range bounds, which belonged to the
// old one (host-local then takes the subnet's first address).
func (c *conflist) render(bridge, subnet string) ([]byte, error) {
	c.bridgePlugin()["bridge"] = bridge
	if subnet != c.subnet {
		r := c.firstRange()
		for k := range r {
			delete(r, k)
		}
		r["subnet"] = subnet
	}
	out, err := json.MarshalIndent(c.raw, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}
