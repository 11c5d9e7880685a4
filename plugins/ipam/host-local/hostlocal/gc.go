package hostlocal

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
)

// GC releases every reservation of this network whose attachment is not
// in cni.dev/valid-attachments (CNI 1.1).
func GC(args *skel.CmdArgs) error {
	conf, _, err := LoadConfig(args.StdinData, args.Args)
	if err != nil {
		return err
	}
	var n types.NetConf
	if err := json.Unmarshal(args.StdinData, &n); err != nil {
		return cnierr.Decode("host-local: cannot parse network config: %v", err)
	}
	store, err := OpenStore(conf.DataDir, conf.Name)
	if err != nil {
		return cnierr.IO("host-local: %v", err)
	}
	defer store.Close()
	if err := store.GC(n.ValidAttachments); err != nil {
		return cnierr.IO("host-local: GC: %v", err)
	}
	return nil
}

// GC releases the reservations of attachments not in valid, and their
// indexes. A reservation whose content names no container (empty,
// binary, written by something else) is left alone: it cannot be told
// stale.
func (s *Store) GC(valid []types.GCAttachment) error {
	keep := map[types.GCAttachment]bool{}
	ids := map[string]bool{} // for reservations written without an ifname
	indexes := map[string]bool{}
	for _, a := range valid {
		keep[a] = true
		ids[a.ContainerID] = true
		indexes[filepath.Base(s.indexPath(a.ContainerID, a.IfName))] = true
	}
	err := s.reservations(func(_ net.IP, path, content string) error {
		content = strings.TrimSpace(content)
		id, ifname, hasIf := strings.Cut(content, lineBreak)
		if !printable(id) || !printable(ifname) || id == "" {
			return nil // not an attachment's: leave it be
		}
		if hasIf && keep[types.GCAttachment{ContainerID: id, IfName: ifname}] || !hasIf && ids[id] {
			return nil
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("release %s: %w", path, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(filepath.Join(s.dir, indexDirName))
	if err != nil {
		return err
	}
	for _, e := range entries {
		base := strings.TrimSuffix(strings.TrimSuffix(e.Name(), tmpSuffix), reserveSuffix)
		if e.Name() == indexComplete || indexes[base] {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, indexDirName, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// writable creates and removes a file in the store's directory.
func (s *Store) writable() error {
	f, err := os.CreateTemp(s.dir, ".status-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// hasFree reports whether set has an address neither reserved nor a
// gateway, by counting: the reservations are one file each.
func (s *Store) hasFree(set RangeSet) (bool, error) {
	size := new(big.Int)
	for i := range set {
		size.Add(size, set[i].Size())
		if set[i].Gateway != nil && set[i].Contains(set[i].Gateway) {
			size.Sub(size, big.NewInt(1))
		}
	}
	if !size.IsInt64() || size.Int64() > 1<<20 {
		return true, nil // more addresses than a node could hold reservations for
	}
	used := int64(0)
	err := s.reservations(func(addr net.IP, _, _ string) error {
		if r := set.RangeFor(addr); r != nil && !addr.Equal(r.Gateway) {
			used++
		}
		return nil
	})
	return used < size.Int64(), err
}

// printable reports whether s holds no control character: container IDs
// and interface names never do.
func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return false
		}
	}
	return true
}
