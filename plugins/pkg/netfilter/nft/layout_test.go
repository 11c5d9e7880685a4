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
// counts the jumps, those of the filter hooks only when they are there.
func TestWantUse(t *testing.T) {
	l := newLayout(netfilter.IPv4)
	rules := l.rules()
	for _, c := range []struct {
		hooks []string
		chain string
		n     uint32 // rules and jumps
	}{
		{nil, ChainGuardRules, uint32(len(rules[ChainGuardRules]))},
		{nil, ChainForwardRules, uint32(len(rules[ChainForwardRules]))},
		{nil, ChainGuardProtected, uint32(len(rules[ChainGuardProtected])) + 1},
		{nil, ChainHostPorts, uint32(len(rules[ChainHostPorts])) + 2},
		{nil, ChainGuard, 0},
		{hookChainNames(), ChainGuard, 1},
		{hookChainNames(), ChainGuardRules, uint32(len(rules[ChainGuardRules])) + 1},
		{hookChainNames(), ChainGuardOutRules, uint32(len(rules[ChainGuardOutRules])) + 1},
		{[]string{ChainForward}, ChainForwardRules, uint32(len(rules[ChainForwardRules])) + 1},
		{[]string{ChainForward}, ChainGuardRules, uint32(len(rules[ChainGuardRules]))},
	} {
		if got := l.wantUse(c.hooks)[c.chain]; got != c.n {
			t.Errorf("hooks %v: use of %s = %d, want %d", c.hooks, c.chain, got, c.n)
		}
	}
}
