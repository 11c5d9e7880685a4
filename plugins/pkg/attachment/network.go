package attachment

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
	"github.com/dockernet/cni-plugins/plugins/pkg/filelock"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/procsys"
)

// A network (a bridge) holds state that no one attachment owns: the
// iptables accepts and drops named after its bridge, its hairpin_ifs
// element, a route_localnet portmap turned on. It goes when the network's
// last attachment goes (a DEL, a GC, the node agent's collection), found
// by the network's records:
//
//	<stateDir>/network/<bridge>/<part>.json         what a kind holds for the bridge ("forward", "portmap")
//	<stateDir>/network/<bridge>/members/<tag>.<kind> one empty file per attachment and kind
//
// Install writes the part and the member before the commit (intent first,
// as the attachment's record), under a shared lock on the network folder;
// a removal takes it exclusively, so no ADD is between its member and its
// commit while a network it joins is being removed. A network without a
// member is removed whoever notices: the DEL that removed the last member,
// or any later ADD, DEL or GC of any network (a crash in between), or the
// node agent.

// NetworkFolder is the store folder of the networks' records.
const NetworkFolder = "network"

// NetworkVersion is the version of the network record's format.
const NetworkVersion = 1

// NetworkRecord is what one kind holds for a network beyond its
// attachments, through which backend and in which families.
type NetworkRecord struct {
	Version  int
	Bridge   string
	Network  string // the CNI network whose ADD wrote it (for dnetctl)
	Backend  string
	Families []netfilter.Family
	// Sysctls are the bridge's settings an ADD changed (route_localnet),
	// by key, with the value to set back.
	Sysctls map[string]string `json:",omitempty"`
}

func (env Env) networksDir() string { return filepath.Join(env.Store.Dir, NetworkFolder) }

func (env Env) networkDir(bridge string) string { return filepath.Join(env.networksDir(), bridge) }

func memberName(tag, kind string) string { return tag + "." + kind }

// join records, before c's commit, what part holds for bridge's network
// and, unless tag is "", that attachment tag's state of that kind
// depends on the network.
func (c *Change) join(part, bridge, tag string, rec NetworkRecord) {
	if bridge == "" || strings.ContainsAny(bridge, "/\x00") || bridge == "." || bridge == ".." {
		return
	}
	if err := c.lockShared(); err != nil {
		c.fail(err)
		return
	}
	dir := c.env.networkDir(bridge)
	members := filepath.Join(dir, "members")
	_, statErr := os.Stat(dir)
	if err := os.MkdirAll(members, 0o700); err != nil {
		c.fail(cnierr.IO("%s: network record of %s: %v", c.label, bridge, err))
		return
	}
	if errors.Is(statErr, os.ErrNotExist) {
		// A new network record: the attachments recorded before network
		// records existed become members too.
		if _, err := c.env.adoptMembers(bridge); err != nil {
			c.fail(cnierr.IO("%s: network record of %s: %v", c.label, bridge, err))
			return
		}
	}
	var have NetworkRecord
	found, err := c.env.Store.Load(filepath.Join(NetworkFolder, bridge), part, &have)
	if err != nil || !found || !sameNetworkRecord(have, rec) {
		if found {
			rec.Sysctls = mergeSysctls(have.Sysctls, rec.Sysctls)
		}
		if err := c.env.Store.SaveShared(filepath.Join(NetworkFolder, bridge), part, rec); err != nil {
			c.fail(cnierr.IO("%s: network record of %s: %v", c.label, bridge, err))
			return
		}
	}
	if tag == "" {
		return
	}
	f, err := os.OpenFile(filepath.Join(members, memberName(tag, part)), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		c.fail(cnierr.IO("%s: network member of %s: %v", c.label, bridge, err))
		return
	}
	f.Close()
}

func sameNetworkRecord(a, b NetworkRecord) bool {
	if a.Version != b.Version || a.Bridge != b.Bridge || a.Backend != b.Backend || !slices.Equal(a.Families, b.Families) {
		return false
	}
	for k := range b.Sysctls {
		if _, ok := a.Sysctls[k]; !ok {
			return false
		}
	}
	return true
}

// mergeSysctls keeps the first value found for each key: the one from
// before any ADD changed it.
func mergeSysctls(old, add map[string]string) map[string]string {
	if len(old) == 0 {
		return add
	}
	out := map[string]string{}
	for k, v := range add {
		out[k] = v
	}
	for k, v := range old {
		out[k] = v
	}
	return out
}

// NoteSysctl records, before c's commit, that an ADD set key, a setting
// of bridge, which was was: the network's removal sets it back.
func (c *Change) NoteSysctl(bridge, network, key, was string) {
	c.join("sysctl", bridge, "", NetworkRecord{Version: NetworkVersion, Bridge: bridge, Network: network, Sysctls: map[string]string{key: was}})
}

// lockShared takes the shared lock on the network folder for the rest
// of the change, once.
func (c *Change) lockShared() error {
	if c.netLock != nil {
		return nil
	}
	lk, err := c.env.lockNetworks(filelock.AcquireShared)
	if err != nil {
		return cnierr.IO("%s: %v", c.label, err)
	}
	c.netLock = lk
	return nil
}

// lockNetworks locks the network folder (a directory, never removed).
func (env Env) lockNetworks(acquire func(string) (*filelock.Lock, error)) (*filelock.Lock, error) {
	if err := os.MkdirAll(env.networksDir(), 0o700); err != nil {
		return nil, err
	}
	return acquire(env.networksDir())
}

// leave drops o's member of kind from every network: the removal of its
// state has landed. The networks it left are looked at once the change
// is done.
func (c *Change) leave(tag, kind string) error {
	matches, err := filepath.Glob(filepath.Join(c.env.networksDir(), "*", "members", memberName(tag, kind)))
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range matches {
		if err := os.Remove(m); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		c.left = append(c.left, filepath.Base(filepath.Dir(filepath.Dir(m))))
	}
	return errors.Join(errs...)
}

// hasMembers reports whether bridge's network has a member; unsure is yes.
func (env Env) hasMembers(bridge string) bool {
	d, err := os.Open(filepath.Join(env.networkDir(bridge), "members"))
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	if err != nil {
		return true
	}
	defer d.Close()
	names, err := d.Readdirnames(1)
	return len(names) > 0 || (err != nil && !errors.Is(err, io.EOF))
}

// Networks lists the bridges with a network record.
func (env Env) Networks() ([]string, error) {
	entries, err := os.ReadDir(env.networksDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// NetworkRecords are the parts recorded for bridge, by kind.
func (env Env) NetworkRecords(bridge string) (map[string]NetworkRecord, error) {
	folder := filepath.Join(NetworkFolder, bridge)
	kinds, err := env.Store.List(folder)
	if err != nil {
		return nil, err
	}
	out := map[string]NetworkRecord{}
	var errs []error
	for _, k := range kinds {
		var rec NetworkRecord
		if _, err := env.Store.Load(folder, k, &rec); err != nil {
			errs = append(errs, err)
			continue
		}
		out[k] = rec
	}
	return out, errors.Join(errs...)
}

// PruneMembers drops every member whose attachment has no record of its
// kind (what a crash between the two removals of an older version, or a
// record removed by hand, leaves), then collects the networks left
// without members: for GC and the node agent, as it reads each member.
func (env Env) PruneMembers() error {
	bridges, err := env.Networks()
	if err != nil {
		return cnierr.IO("network records: %v", err)
	}
	lk, err := env.lockNetworks(filelock.Acquire)
	if err != nil {
		return cnierr.IO("network records: %v", err)
	}
	var errs []error
	for _, br := range bridges {
		members := filepath.Join(env.networkDir(br), "members")
		names, _ := os.ReadDir(members)
		for _, m := range names {
			tag, kind, ok := strings.Cut(m.Name(), ".")
			if !ok {
				continue
			}
			if _, err := os.Stat(filepath.Join(env.Store.Dir, kind, tag+".json")); errors.Is(err, os.ErrNotExist) {
				errs = append(errs, os.Remove(filepath.Join(members, m.Name())))
			}
		}
	}
	lk.Release()
	return errors.Join(append(errs, env.CollectNetworks())...)
}

// CollectNetworks removes the state and records of every network without
// a member: those a crash left between the last member's removal and the
// network's, and those whose last attachment went by a collection.
func (env Env) CollectNetworks() error {
	bridges, err := env.Networks()
	if err != nil {
		return cnierr.IO("network records: %v", err)
	}
	var errs []error
	for _, br := range bridges {
		if !env.hasMembers(br) {
			errs = append(errs, env.RemoveNetworkIfUnused(br))
		}
	}
	return errors.Join(errs...)
}

// RemoveNetworkIfUnused removes what bridge's network holds beyond its
// attachments, unless it has a member: under the exclusive lock, so no
// ADD is between its member and its commit. What the records name is
// removed first, then the records: a crash in between leaves records
// the next look removes again.
func (env Env) RemoveNetworkIfUnused(bridge string) error {
	lk, err := env.lockNetworks(filelock.Acquire)
	if err != nil {
		return cnierr.IO("network %s: %v", bridge, err)
	}
	defer lk.Release()
	if env.hasMembers(bridge) {
		return nil
	}
	recs, err := env.NetworkRecords(bridge)
	if err != nil {
		return cnierr.IO("network %s: %v; its records are left as they are", bridge, err)
	}
	if err := env.removeNetworkState(bridge, recs); err != nil {
		return err
	}
	if err := os.RemoveAll(env.networkDir(bridge)); err != nil {
		return cnierr.IO("network %s: %v", bridge, err)
	}
	return nil
}

// removeNetworkState deletes, in one transaction, what recs say the
// network holds, then sets back the sysctls they name.
func (env Env) removeNetworkState(bridge string, recs map[string]NetworkRecord) error {
	var tx netfilter.Txn
	done := map[string]bool{}
	for _, rec := range recs {
		for _, f := range rec.Families {
			key := fmt.Sprintf("%s %s", strings.ToLower(rec.Backend), f)
			if rec.Backend == "" || done[key] {
				continue
			}
			done[key] = true
			be, err := env.Backends.New(rec.Backend, f)
			if err != nil {
				return cnierr.Config("network %s: %v", bridge, err)
			}
			be.DelNetwork(&tx, bridge)
		}
	}
	if err := tx.Commit(); err != nil {
		return cnierr.Wrap(err, "network "+bridge)
	}
	var errs []error
	for _, rec := range recs {
		for key, was := range rec.Sysctls {
			// "": the bridge, and its settings, are gone.
			if now := procsys.Get(key); now != "" && now != was {
				errs = append(errs, procsys.Set(key, was))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return cnierr.Wrap(err, "network "+bridge+": set its settings back")
	}
	return nil
}

// adoption is a network that a removed record, written before network
// records, depended on.
type adoption struct {
	kind string
	rec  NetworkRecord
}

// adoptMembers makes every attachment whose records depend on bridge a
// member of its network: records written before network records name no
// membership. It returns how many there are.
func (env Env) adoptMembers(bridge string) (int, error) {
	members := filepath.Join(env.networkDir(bridge), "members")
	n := 0
	var errs []error
	for _, k := range Kinds {
		tags, err := env.Store.List(k.Folder())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, tag := range tags {
			st, found, err := k.Stored(env, tag)
			if err != nil || !found || !slices.Contains(st.Networks(), bridge) {
				errs = append(errs, err)
				continue
			}
			if err := os.MkdirAll(members, 0o700); err != nil {
				return n, err
			}
			f, err := os.OpenFile(filepath.Join(members, memberName(tag, k.Folder())), os.O_CREATE|os.O_WRONLY, 0o600)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			f.Close()
			n++
		}
	}
	return n, errors.Join(errs...)
}

// adoptNetwork records the network of a, if it has no record yet, with
// the attachments that still depend on it as members; without any, its
// state goes.
func (env Env) adoptNetwork(a adoption) error {
	if _, err := os.Stat(env.networkDir(a.rec.Bridge)); err == nil {
		return env.RemoveNetworkIfUnused(a.rec.Bridge) // recorded meanwhile: by its members
	}
	lk, err := env.lockNetworks(filelock.Acquire)
	if err != nil {
		return cnierr.IO("network %s: %v", a.rec.Bridge, err)
	}
	n, err := env.adoptMembers(a.rec.Bridge)
	if err == nil {
		err = env.Store.SaveShared(filepath.Join(NetworkFolder, a.rec.Bridge), a.kind, a.rec)
	}
	lk.Release()
	if err != nil {
		return cnierr.IO("network %s: %v", a.rec.Bridge, err)
	}
	if n > 0 {
		return nil
	}
	return env.RemoveNetworkIfUnused(a.rec.Bridge)
}
