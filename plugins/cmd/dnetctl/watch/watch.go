// Package watch is dnetctl's optional node agent: it keeps what the
// records say installed through firewall flushes and reloads, holds the
// published host ports as Docker does, and collects the attachments whose
// container is gone when no runtime sends a DEL or a GC. See README.md.
package watch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"path/filepath"
	"time"

	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
	"github.com/dockernet/cni-plugins/plugins/pkg/filelock"
)

// Agent is one node's agent. Run it in the host network namespace.
type Agent struct {
	Env attachment.Env
	// Poll is how often it looks without being told: iptables-legacy
	// sends no notification, and a missed one costs at most this long.
	Poll time.Duration
	// Hold binds every published host port while its mapping lives.
	Hold bool
	// Collect, when set, removes attachments whose container is gone.
	Collect *Collector
	// StatusFile, when set, is rewritten after each look: the health line.
	StatusFile string
	Log        *log.Logger

	records      records
	guard        restoreGuard
	held         *holder
	status       status
	warnedStatus bool     // the status file could not be written, and the log said so
	written      struct { // when the status file was last written, and with how many restores
		at       time.Time
		restores int
	}
}

// New returns an agent over env logging to w.
func New(env attachment.Env, w io.Writer) *Agent {
	return &Agent{Env: env, Poll: time.Second, Log: log.New(w, "dnetctl watch: ", log.LstdFlags|log.Lmicroseconds)}
}

// Run looks once, then at every nf_tables change and every Poll, until
// ctx ends; it releases the ports it holds when it returns.
func (a *Agent) Run(ctx context.Context) error {
	lock, err := a.lock()
	if err != nil {
		return err
	}
	defer lock.Release()
	a.held = newHolder(a.Log)
	defer a.held.releaseAll()
	changes, stop := subscribe(a.Log)
	defer stop()
	tick := time.NewTicker(a.Poll)
	defer tick.Stop()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	a.Log.Printf("watching the records in %s (poll %s, hold ports %v, collect %v)", a.Env.Store.Dir, a.Poll, a.Hold, a.Collect != nil)
	a.look("start")
	for {
		// A restore the spacing held back, or one that did not complete,
		// is due at retryAt, whatever else wakes the agent.
		if !a.guard.retryAt.IsZero() {
			retry.Reset(time.Until(a.guard.retryAt))
			a.guard.retryAt = time.Time{}
		}
		select {
		case <-ctx.Done():
			a.Log.Printf("stopping: %d ports released", a.held.count())
			return nil
		case <-changes:
			drain(changes, 20*time.Millisecond)
			a.look("nf_tables change")
		case <-retry.C:
			a.look("retry")
		case <-tick.C:
			a.look("")
		}
	}
}

// LockFile is, in the state directory, what one agent holds while it runs.
const LockFile = "watch.lock"

// lock makes the agent the only one of its state directory: two would
// both restore after a flush, and iptables' masquerade fast path would
// get each rule twice.
func (a *Agent) lock() (*filelock.Lock, error) {
	path := filepath.Join(a.Env.Store.Dir, LockFile)
	lk, err := filelock.TryAcquire(path)
	if errors.Is(err, filelock.ErrHeld) {
		return nil, fmt.Errorf("another dnetctl watch already runs for the state directory %s (it holds %s): stop it first, or run this one with another -state-dir", a.Env.Store.Dir, path)
	}
	return lk, err
}

// drain swallows the rest of a burst: one look answers a whole transaction.
func drain(ch <-chan struct{}, quiet time.Duration) {
	t := time.NewTimer(quiet)
	defer t.Stop()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
			t.Reset(quiet)
		case <-t.C:
			return
		}
	}
}

// look is one pass: reload the records if they changed, put back what a
// flush removed, hold and release ports, collect what is gone.
func (a *Agent) look(why string) {
	start := time.Now()
	if err := a.records.reload(a.Env); err != nil {
		a.Log.Printf("records: %v", err)
	}
	if missing := a.probe(why != ""); missing != nil {
		a.restore(why, missing, start)
	}
	if a.Hold {
		a.held.sync(a.records.ports())
	}
	if a.Collect != nil {
		if _, err := a.Collect.sweep(a.Env, a.Log, time.Now()); err != nil {
			a.Log.Printf("collect: %v", err)
		}
	} else if err := a.Env.CollectNetworks(); err != nil {
		// A network a crash left without attachments: its state goes.
		a.Log.Printf("networks: %v", err)
	}
	a.writeStatus()
}
