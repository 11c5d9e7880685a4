package watch

import (
	"log"

	"github.com/google/nftables"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// subscribe reports every nf_tables transaction (nft flush ruleset, a
// firewalld reload, iptables-nft -F, an ADD or DEL) on the channel: the
// agent then looks at once instead of at the next poll. Without nf_tables
// it returns a nil channel, which never fires. Its own restores wake it
// once more, and that look finds everything in place. (A monitor of
// deletions alone would never report: google/nftables hands a generation
// over at its NEWGEN message, which that filter drops.)
func subscribe(l *log.Logger) (<-chan struct{}, func()) {
	if !netfilter.NFTablesAvailable() {
		return nil, func() {}
	}
	conn, err := nftables.New()
	if err != nil {
		l.Printf("nf_tables notifications unavailable, polling only: %v", err)
		return nil, func() {}
	}
	mon := nftables.NewMonitor(nftables.WithMonitorAction(nftables.MonitorActionAny), nftables.WithMonitorObject(nftables.MonitorObjectAny),
		nftables.WithMonitorEventBuffer(64))
	events, err := conn.AddGenerationalMonitor(mon)
	if err != nil {
		l.Printf("nf_tables notifications unavailable, polling only: %v", err)
		return nil, func() {}
	}
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		for range events {
			select {
			case out <- struct{}{}:
			default: // a look is already due
			}
		}
	}()
	return out, func() { _ = mon.Close() }
}
