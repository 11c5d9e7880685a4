package watch

import (
	"strings"
	"time"

	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// probe asks each backend the records use whether the state all their
// attachments rely on is there: every table and chain the backend uses,
// the jumps to them, each network's rules and, with iptables, the
// nftables table of its allowlists. It names what is missing; nil when
// nothing is. A few netlink dumps, or one iptables-restore --test per
// family, whatever the number of attachments. thorough asks iptables-nft
// for the restore even when netlink finds the jumps (a look after a
// change, not an idle poll).
func (a *Agent) probe(thorough bool) []string {
	var missing []string
	for u, usage := range a.records.usages {
		kinds := usage.kinds
		kinds.Thorough = thorough
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
			continue
		}
		// After a change, each record's own parts too: a flush of one
		// set or chain leaves the base whole.
		if sp, ok := be.(netfilter.SpecProber); ok && thorough {
			if err := sp.ProbeSpecs(usage.ports, usage.masq, usage.fwd); err != nil {
				missing = append(missing, err.Error())
			}
		}
	}
	return missing
}

// A writer that keeps removing our state (a firewall manager reapplying
// its own ruleset in a loop) is answered at most once per
// restoreSpacing: the agent never stops restoring, since the drops it
// puts back are what protects the containers, but a storm of reloads
// costs it a restore per spacing, not one per reload, and the last
// reload of a storm is answered within a spacing. More than fightMax
// restores within fightWindow are logged once per window.
const (
	restoreSpacing = 200 * time.Millisecond
	fightWindow    = 10 * time.Second
	fightMax       = 10
)

type restoreGuard struct {
	last    time.Time   // the latest restore
	recent  []time.Time // restores within fightWindow
	warned  time.Time   // when a fight was last logged
	retryAt time.Time   // when a refused or incomplete restore is due again
}

// allow reports whether a restore may run at now and, when it may not,
// when it may; it records an allowed one. fighting reports a storm, once
// per window.
func (g *restoreGuard) allow(now time.Time) (ok bool, next time.Time, fighting bool) {
	if !g.last.IsZero() && now.Sub(g.last) < restoreSpacing {
		return false, g.last.Add(restoreSpacing), false
	}
	g.last = now
	kept := g.recent[:0]
	for _, t := range g.recent {
		if now.Sub(t) < fightWindow {
			kept = append(kept, t)
		}
	}
	g.recent = append(kept, now)
	if len(g.recent) > fightMax && now.Sub(g.warned) >= fightWindow {
		g.warned = now
		return true, time.Time{}, true
	}
	return true, time.Time{}, false
}

// restore installs every record's state again, protections first. Every
// add is idempotent, so what survived stays single and an agent killed
// in the middle and started again leaves one copy of each rule and
// element. When it may not run yet, or the probe still finds something
// missing after it, a look is due again (retryAt) as soon as it may run.
func (a *Agent) restore(why string, missing []string, start time.Time) {
	ok, next, fighting := a.guard.allow(time.Now())
	if !ok {
		a.guard.retryAt = next
		return
	}
	if fighting {
		a.Log.Printf("our state keeps disappearing (more than %d restores within %s): another writer removes it; restoring at most every %s. Missing now: %s",
			fightMax, fightWindow, restoreSpacing, strings.Join(missing, "; "))
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
	// A reinstall another writer cut short (iptables: a flush between two
	// restores of a transaction) is not done: look again soon.
	if still := a.probe(true); still != nil {
		a.Log.Printf("after the restore, still missing: %s; again in %s", strings.Join(still, "; "), restoreSpacing)
		a.guard.retryAt = a.guard.last.Add(restoreSpacing)
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
	var all []attachment.Stored
	for _, recs := range byTag {
		all = append(all, recs...)
	}
	reinstallProtectionsFirst(change, all)
	if change.Commit() == nil {
		return len(byTag), nil
	}
	var errs []string
	n := 0
	for tag, recs := range byTag {
		c := env.Begin("watch " + tag)
		reinstallProtectionsFirst(c, recs)
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

// reinstallProtectionsFirst queues recs on c, the drops (forwarding's
// guard, isolation, direct routing) before the masquerade and the
// published ports, so that with iptables, whose transaction is several
// restores in a row, no port is open before its protections are.
func reinstallProtectionsFirst(c *attachment.Change, recs []attachment.Stored) {
	for _, kind := range []string{attachment.Forwarding.Name, attachment.Masquerade.Name, attachment.PortMappings.Name} {
		for _, st := range recs {
			if st.Kind() == kind {
				st.Reinstall(c)
			}
		}
	}
}

type restoreError struct{ errs []string }

func (e *restoreError) Error() string { return strings.Join(e.errs, "; ") }
