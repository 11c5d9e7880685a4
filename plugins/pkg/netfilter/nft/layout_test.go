package nft

import (
	"testing"

	"github.com/google/nftables/expr"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// TestWrittenSetsAreLookedUp: missing() asks for no set, on the ground
// that every set an ADD writes is looked up by a rule of the base (which
// the kernel does not let go while the rule is there). Only the sets no
// longer written, which DEL merely empties, may lack such a rule.
func TestWrittenSetsAreLookedUp(t *testing.T) {
	notWritten := map[string]bool{SetFwdProtect: true, SetSrcLimited: true, SetSrcAllowed: true}
	for _, f := range netfilter.BothFamilies {
		l := newLayout(f)
		lookedUp := map[string]bool{}
		for _, rules := range l.rules() {
			for _, r := range rules {
				for _, e := range r {
					if lk, ok := e.(*expr.Lookup); ok {
						lookedUp[lk.SetName] = true
					}
				}
			}
		}
		for _, s := range l.sets() {
			if !lookedUp[s.Name] && !notWritten[s.Name] {
				t.Errorf("%s: set %s is looked up by no rule of the base: missing() would not see it deleted", f, s.Name)
			}
		}
	}
}

// TestWantUse: a hooked chain's use is its rules; a chain jumped to also
// counts the jumps.
func TestWantUse(t *testing.T) {
	l := newLayout(netfilter.IPv4)
	rules, want := l.rules(), l.wantUse()
	for _, c := range []struct {
		chain string
		jumps uint32
	}{{ChainGuard, 0}, {ChainForward, 0}, {ChainGuardProtected, 1}, {ChainHostPorts, 2}} {
		if got := want[c.chain]; got != uint32(len(rules[c.chain]))+c.jumps {
			t.Errorf("use of %s = %d, want %d rules + %d jumps", c.chain, got, len(rules[c.chain]), c.jumps)
		}
	}
}
