package watch

import (
	"strings"
	"time"

	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// probe asks each backend the records use whether the state all their
// attachments rely on is there (a table, base chains, jumps: what a
// flush or a reload removes first). It names what is missing; nil when
// nothing is. A few netlink dumps, or one iptables-restore --test per
// family, whatever the number of attachments.
func (a *Agent) probe() []string {
	var missing []string
	for u, kinds := range a.records.uses() {
		be, err := a.Env.Backends.New(u.backend, u.f)
		if err != nil {
			a.Log.Printf("%s %s: %v", u.f, u.backend, err)
			continue
		}
		p, ok := be.(netfilter.BaseProber)
		if !ok {
			continue
		}
		if err := p.ProbeBase(kinds); err != nil {
			missing = append(missing, err.Error())
		}
	}
	return missing
}

// Restores that follow each other this closely mean another writer keeps
// removing our state (a firewall manager reapplying its own ruleset in a
// loop): the agent then stops for a while and says so, rather than fight.
const (
	fightWindow = 10 * time.Second
	fightMax    = 10
	fightPause  = 30 * time.Second
)

type restoreGuard struct {
	recent      []time.Time
	pausedUntil time.Time
}

// allow reports whether a restore may run now, and records it.
func (g *restoreGuard) allow(now time.Time) (bool, bool) {
	if now.Before(g.pausedUntil) {
		return false, false
	}
	kept := g.recent[:0]
	for _, t := range g.recent {
		if now.Sub(t) < fightWindow {
			kept = append(kept, t)
		}
	}
	g.recent = append(kept, now)
	if len(g.recent) > fightMax {
		g.recent, g.pausedUntil = nil, now.Add(fightPause)
		return false, true
	}
	return true, false
}

// restore installs every record's state again. Everything a backend adds
// is idempotent, so what survived stays single and an agent killed in the
// middle and started again leaves one copy of each rule and element.
func (a *Agent) restore(why string, missing []string, start time.Time) {
	ok, fighting := a.guard.allow(time.Now())
	if fighting {
		a.Log.Printf("our state keeps disappearing (%d restores within %s): another writer removes it; not restoring until %s. Missing now: %s",
			fightMax+1, fightWindow, a.guard.pausedUntil.Format(time.TimeOnly), strings.Join(missing, "; "))
	}
	if !ok {
		return
	}
	n, err := reinstall(a.Env, a.records.byTag)
	took := time.Since(start).Round(time.Millisecond)
	if why == "" {
		why = "poll"
	}
	if err != nil {
		a.Log.Printf("restore after %s (%s): %d attachments reinstalled in %s, errors: %v", why, strings.Join(missing, "; "), n, took, err)
	} else {
		a.Log.Printf("restored %d attachments in %s after %s: %s", n, took, why, strings.Join(missing, "; "))
	}
	a.status.Restores++
	a.status.LastRestore = time.Now().UTC().Format(time.RFC3339Nano)
	a.status.LastRestoreTook = took.String()
}

// reinstall queues every record's state in one transaction (one netlink
// batch per nftables family); when that fails, one per attachment, so
// that one bad record does not keep the others out.
func reinstall(env attachment.Env, byTag map[string][]attachment.Stored) (int, error) {
	// What the sessions learned before (the table's base is there) is
	// what the flush made untrue.
	netfilter.ForgetKnown()
	change := env.Begin("watch")
	for _, recs := range byTag {
		for _, st := range recs {
			st.Reinstall(change)
		}
	}
	if change.Commit() == nil {
		return len(byTag), nil
	}
	var errs []string
	n := 0
	for tag, recs := range byTag {
		c := env.Begin("watch " + tag)
		for _, st := range recs {
			st.Reinstall(c)
		}
		if err := c.Commit(); err != nil {
			errs = append(errs, err.Error())
			continue
		}
		n++
	}
	if len(errs) > 0 {
		return n, &restoreError{errs}
	}
	return n, nil
}

type restoreError struct{ errs []string }

func (e *restoreError) Error() string { return strings.Join(e.errs, "; ") }
