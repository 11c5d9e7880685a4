package hostlocal

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/dockernet/cni-plugins/plugins/pkg/filelock"
)

// DefaultDataDir is where reservations live unless the config sets dataDir.
const DefaultDataDir = "/var/lib/cni/networks"

// The on-disk layout is the reference host-local's, so a node can switch
// plugins without losing or double-handing its reservations:
//
//	<dataDir>/<network>/<ip>                   "<containerID>\r\n<ifname>"
//	<dataDir>/<network>/last_reserved_ip.<n>   last address handed out from range set n
//	<dataDir>/<network>/lock                   flock held for every read-modify-write
const (
	lineBreak          = "\r\n"
	lastReservedPrefix = "last_reserved_ip."
	lockFileName       = "lock"
)

// Store is the reservation directory of one network.
type Store struct {
	dir  string
	lock *filelock.Lock
}

// OpenStore creates the network's directory if needed and takes its lock;
// Close releases it. Every operation on a Store happens under that lock.
func OpenStore(dataDir, network string) (*Store, error) {
	if dataDir == "" {
		dataDir = DefaultDataDir
	}
	dir := filepath.Join(dataDir, network)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create reservation directory %s: %w", dir, err)
	}
	lk, err := filelock.Acquire(filepath.Join(dir, lockFileName))
	if err != nil {
		return nil, err
	}
	return &Store{dir: dir, lock: lk}, nil
}

// Close releases the lock.
func (s *Store) Close() { s.lock.Release() }

// Reserve records addr for the attachment; false when it is already taken.
func (s *Store) Reserve(id, ifname string, addr net.IP, rangeSet int) (bool, error) {
	path := filepath.Join(s.dir, addr.String())
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reserve %s: %w", addr, err)
	}
	_, werr := f.WriteString(strings.TrimSpace(id) + lineBreak + ifname)
	cerr := f.Close()
	if werr != nil || cerr != nil {
		_ = os.Remove(path)
		return false, fmt.Errorf("write reservation %s: %v", path, errors.Join(werr, cerr))
	}
	last := filepath.Join(s.dir, fmt.Sprintf("%s%d", lastReservedPrefix, rangeSet))
	if err := os.WriteFile(last, []byte(addr.String()), 0o644); err != nil {
		_ = os.Remove(path)
		return false, fmt.Errorf("write %s: %w", last, err)
	}
	return true, nil
}

// LastReserved returns the last address handed out from range set n, or nil.
func (s *Store) LastReserved(rangeSet int) net.IP {
	data, err := os.ReadFile(filepath.Join(s.dir, fmt.Sprintf("%s%d", lastReservedPrefix, rangeSet)))
	if err != nil {
		return nil
	}
	return net.ParseIP(strings.TrimSpace(string(data)))
}

// owns reports whether a reservation file's content belongs to id/ifname.
// Files written without an interface name (very old reference versions)
// match on the container ID alone.
func owns(content, id, ifname string) bool {
	content = strings.TrimSpace(content)
	if gotID, gotIf, ok := strings.Cut(content, lineBreak); ok {
		return gotID == id && gotIf == ifname
	}
	return content == id
}

// reservations calls fn for every reservation file.
func (s *Store) reservations(fn func(addr net.IP, path, content string) error) error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("read %s: %w", s.dir, err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		addr := net.ParseIP(e.Name())
		if addr == nil {
			continue // lock, last_reserved_ip.N, anything else
		}
		path := filepath.Join(s.dir, e.Name())
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		if err := fn(addr, path, string(data)); err != nil {
			return err
		}
	}
	return nil
}

// Lookup returns the addresses reserved for id/ifname.
func (s *Store) Lookup(id, ifname string) ([]net.IP, error) {
	var out []net.IP
	err := s.reservations(func(addr net.IP, _, content string) error {
		if owns(content, id, ifname) {
			out = append(out, addr)
		}
		return nil
	})
	return out, err
}

// Release frees every address of id/ifname; releasing nothing is not an error.
func (s *Store) Release(id, ifname string) error {
	return s.reservations(func(_ net.IP, path, content string) error {
		if !owns(content, id, ifname) {
			return nil
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("release %s: %w", path, err)
		}
		return nil
	})
}

// ReleaseAddr frees one address if it belongs to id/ifname (used to undo a
// half-finished ADD).
func (s *Store) ReleaseAddr(addr net.IP, id, ifname string) error {
	path := filepath.Join(s.dir, addr.String())
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if owns(string(data), id, ifname) {
		return os.Remove(path)
	}
	return nil
}
