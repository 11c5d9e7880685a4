package hostlocal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// First use: whether an address handed out has never been handed out
// before by this store. The bridge announces a new container's addresses
// (a gratuitous ARP, an unsolicited neighbour advertisement) so that
// neighbours holding the MAC of the address's previous owner update at
// once; a broadcast that the bridge copies to every port, which with
// 1,000 containers present cost each ADD 3.9 ms (make bench-timeline,
// -timeline-fill 1000). An address that nobody held before has no
// neighbour entry anywhere, and needs no announcement.
//
// Round robin hands out each range set's addresses in order, so until it
// wraps, every address it finds past the last one handed out is a first
// use. The store knows that only while it is wholly ours (s.whole: made
// by us, changed by nothing else); then a marker per range set,
//
//	<dataDir>/<network>/.attachments/lapped.<n>
//
// written before the first address that may be a reuse is reserved (the
// round robin wrapped or started over, or an address was requested by
// name, which may lie ahead of the round robin), says it no longer knows.
// A crash after the marker and before the reservation only makes it
// announce more.

func (s *Store) lappedPath(rangeSet int) string {
	return filepath.Join(s.dir, indexDirName, fmt.Sprintf("lapped.%d", rangeSet))
}

// firstLap reports whether range set n's round robin has handed out only
// first uses so far.
func (s *Store) firstLap(rangeSet int) bool {
	if !s.whole {
		return false
	}
	_, err := os.Stat(s.lappedPath(rangeSet))
	return errors.Is(err, os.ErrNotExist)
}

// endFirstLap records that range set n may hand out an address again.
func (s *Store) endFirstLap(rangeSet int) error {
	if !s.firstLap(rangeSet) {
		return nil
	}
	return os.WriteFile(s.lappedPath(rangeSet), nil, 0o644)
}
