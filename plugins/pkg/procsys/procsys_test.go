package procsys

import (
	"errors"
	"io/fs"
	"testing"
)

// A missing parameter (a kernel without IPv6, an interface gone) must be
// recognisable, so callers can tell "nothing to set" from a failure.
func TestSetMissingKey(t *testing.T) {
	err := Set("net/ipv6/conf/dnet-no-such-if/disable_ipv6", "1")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Set on a missing key: %v, want fs.ErrNotExist", err)
	}
}
