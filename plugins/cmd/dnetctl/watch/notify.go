package watch

import (
	"log"
	"time"

	"github.com/google/nftables"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// subscribe reports every nf_tables transaction (nft flush ruleset, a
// firewalld reload, iptables-nft -F, an ADD or DEL) on the channel: the
// agent then looks at once instead of at the next poll. Without nf_tables
// the channel never fires. Its own restores wake it once more, and that
// look finds everything in place. (A monitor of deletions alone would
// never report: google/nftables hands a generation over at its NEWGEN
// message, which that filter drops.) When the kernel drops notifications
// (ENOBUFS) the monitor ends; it is opened again, and the missed change
// is reported as one, so that the agent looks.
func subscribe(l *log.Logger) (<-chan struct{}, func()) {
	out := make(chan struct{}, 1)
	notify := func() {
		select {
		case out <- struct{}{}:
		default: // a look is already due
		}
	}
	stop := make(chan struct{})
	if !netfilter.NFTablesAvailable() {
		return out, func() {}
	}
	go func() {
		for attempt := 0; ; attempt++ {
			mon, events, err := monitor()
			if err != nil {
				l.Printf("nf_tables notifications unavailable, polling only: %v", err)
				return
			}
			if attempt > 0 {
				notify()
			}
			done := false
			for !done {
				select {
				case _, ok := <-events:
					if !ok {
						done = true
						continue
					}
					notify()
				case <-stop:
					_ = mon.Close()
					return
				}
			}
			_ = mon.Close()
			l.Printf("nf_tables notifications were dropped; listening again")
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return out, func() { close(stop) }
}

func monitor() (*nftables.Monitor, chan *nftables.MonitorEvents, error) {
	conn, err := nftables.New(nftables.WithSockOptions(netfilter.BigBuffers))
	if err != nil {
		return nil, nil, err
	}
	mon := nftables.NewMonitor(nftables.WithMonitorAction(nftables.MonitorActionAny), nftables.WithMonitorObject(nftables.MonitorObjectAny),
		nftables.WithMonitorEventBuffer(64))
	events, err := conn.AddGenerationalMonitor(mon)
	if err != nil {
		return nil, nil, err
	}
	return mon, events, nil
}
