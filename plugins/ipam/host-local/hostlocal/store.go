package hostlocal

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
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
//
// Our addition, which the reference ignores: an index per attachment, so ADD
// and DEL cost the same with many reservations as with none, instead of
// reading every reservation file:
//
//	<dataDir>/<network>/.attachments/<hash>    the attachment's addresses, one per line
//	<dataDir>/<network>/.attachments/complete  present when every reservation has an index
//	                                           (the directory was made by us)
const (
	lineBreak          = "\r\n"
	lastReservedPrefix = "last_reserved_ip."
	lockFileName       = "lock"
	indexDirName       = ".attachments"
	indexComplete      = "complete"
	tmpSuffix          = ".new" // an index being replaced
	reserveSuffix      = ".res" // a reservation being written, before it is linked into place
)

// Store is the reservation directory of one network.
type Store struct {
	dir   string
	lock  *filelock.Lock
	whole bool // every reservation is indexed (see complete)
}

func (s *Store) indexPath(id, ifname string) string {
	sum := sha256.Sum256([]byte(strings.TrimSpace(id) + "\x00" + ifname))
	return filepath.Join(s.dir, indexDirName, hex.EncodeToString(sum[:16]))
}

// indexed returns the addresses the index lists for id/ifname that really
// are reserved for it (the reference plugin could have released some).
func (s *Store) indexed(id, ifname string) (addrs []net.IP, hasIndex bool) {
	data, err := os.ReadFile(s.indexPath(id, ifname))
	if err != nil {
		return nil, false
	}
	for _, line := range strings.Fields(string(data)) {
		a := net.ParseIP(line)
		if a == nil {
			continue
		}
		if content, err := os.ReadFile(filepath.Join(s.dir, a.String())); err == nil && owns(string(content), id, ifname) {
			addrs = append(addrs, a)
		}
	}
	return addrs, true
}

// writeIndex records addrs as id/ifname's reservations, atomically: a
// crash leaves the old index or the new one, never half of it.
func (s *Store) writeIndex(id, ifname string, addrs []net.IP) error {
	var b strings.Builder
	for _, a := range addrs {
		b.WriteString(a.String() + "\n")
	}
	return writeAtomic(s.indexPath(id, ifname), b.String())
}

// indexAdd adds addr to id/ifname's index.
func (s *Store) indexAdd(id, ifname string, addr net.IP) error {
	var addrs []net.IP
	if data, err := os.ReadFile(s.indexPath(id, ifname)); err == nil {
		for _, f := range strings.Fields(string(data)) {
			if a := net.ParseIP(f); a != nil && !a.Equal(addr) {
				addrs = append(addrs, a)
			}
		}
	}
	return s.writeIndex(id, ifname, append(addrs, addr))
}

func writeAtomic(path, content string) error {
	tmp := path + tmpSuffix
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// complete reports whether every reservation in the directory is indexed,
// so an attachment without an index holds nothing. A directory we made
// is complete until something else changes it: the marker holds the
// directory's state after our last change (see dirStamp), which the
// reference plugin, sharing the lock but keeping no index, changes
// whenever it reserves. From then on the directory is read
// whole when an attachment has no index.
func (s *Store) complete() bool { return s.whole }

func (s *Store) markerPath() string { return filepath.Join(s.dir, indexDirName, indexComplete) }

// dirStamp identifies the directory's state without listing it: its
// modification time and where each range's round robin stopped, which
// every reference ADD rewrites. (A change that only removes reservations
// may go unseen within one clock tick; it cannot leave one unindexed.)
func (s *Store) dirStamp() string {
	st, err := os.Stat(s.dir)
	if err != nil {
		return ""
	}
	stamp := strconv.FormatInt(st.ModTime().UnixNano(), 10)
	for i := 0; ; i++ {
		last, err := os.ReadFile(filepath.Join(s.dir, fmt.Sprintf("%s%d", lastReservedPrefix, i)))
		if err != nil {
			return stamp
		}
		stamp += " " + string(last)
	}
}

// OpenStore creates the network's directory if needed and takes its lock;
// Close releases it. Every operation on a Store happens under that lock.
func OpenStore(dataDir, network string) (*Store, error) {
	if dataDir == "" {
		dataDir = DefaultDataDir
	}
	dir := filepath.Join(dataDir, network)
	_, statErr := os.Stat(dir)
	fresh := errors.Is(statErr, os.ErrNotExist)
	if err := os.MkdirAll(filepath.Join(dir, indexDirName), 0o755); err != nil {
		return nil, fmt.Errorf("create reservation directory %s: %w", dir, err)
	}
	lk, err := filelock.Acquire(filepath.Join(dir, lockFileName))
	if err != nil {
		return nil, err
	}
	s := &Store{dir: dir, lock: lk, whole: fresh}
	if !fresh {
		stamp, err := os.ReadFile(s.markerPath())
		s.whole = err == nil && string(stamp) == s.dirStamp()
		if err == nil && !s.whole {
			_ = os.Remove(s.markerPath()) // changed by another: never complete again
		}
	}
	return s, nil
}

// Close stamps the marker of a complete directory with its state after
// our changes, and releases the lock.
func (s *Store) Close() {
	if s.whole {
		_ = writeAtomic(s.markerPath(), s.dirStamp())
	}
	s.lock.Release()
}

// Reserve records addr for the attachment; false when it is already
// taken. Intent first: the index names addr before the reservation
// exists, and the reservation appears whole (written aside, then linked
// into place, which fails if the address is taken), so a crash at any
// point leaves nothing a DEL of the attachment cannot find.
func (s *Store) Reserve(id, ifname string, addr net.IP, rangeSet int) (bool, error) {
	path := filepath.Join(s.dir, addr.String())
	if _, err := os.Lstat(path); err == nil {
		return false, nil
	}
	if err := s.indexAdd(id, ifname, addr); err != nil {
		return false, fmt.Errorf("index %s: %w", addr, err)
	}
	tmp := s.indexPath(id, ifname) + reserveSuffix
	if err := os.WriteFile(tmp, []byte(strings.TrimSpace(id)+lineBreak+ifname), 0o644); err != nil {
		return false, fmt.Errorf("write reservation %s: %w", tmp, err)
	}
	err := os.Link(tmp, path)
	_ = os.Remove(tmp)
	if errors.Is(err, os.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reserve %s: %w", addr, err)
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
	if addrs, ok := s.indexed(id, ifname); ok || s.complete() {
		return addrs, nil
	}
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
	addrs, hasIndex := s.indexed(id, ifname)
	if hasIndex || s.complete() {
		for _, a := range addrs {
			if err := s.ReleaseAddr(a, id, ifname); err != nil {
				return fmt.Errorf("release %s: %w", a, err)
			}
		}
		for _, p := range []string{s.indexPath(id, ifname), s.indexPath(id, ifname) + tmpSuffix, s.indexPath(id, ifname) + reserveSuffix} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove index: %w", err)
			}
		}
		return nil
	}
	// A directory the reference plugin also wrote to: look at every reservation.
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
