package netfilter

import (
	"fmt"
	"os"
	"sync"
	"syscall"

	"github.com/google/nftables"
)

// Every nf_tables request of a process goes through one lasting netlink
// socket per network namespace. Closing an nfnetlink socket while the
// kernel still holds committed deletions to free makes the close wait for
// an RCU grace period (nf_tables flushes its destroy work on
// NETLINK_URELEASE), so a socket per request, as nftables.New() makes by
// default, cost a grace period for each request after the first DEL of a
// process. Plugin processes live in one namespace; tests switch threads
// between namespaces, hence the key.
var nftSocks struct {
	sync.Mutex
	byNS     map[uint64]*nftables.Conn
	baseOK   map[uint64]map[Family]bool // the table was found or made complete by this process
	batching bool                       // inside Batch: queue changes, commit at its end
}

// nftSession is the calling thread's connection and what this process
// knows of its namespace's table.
type nftSession struct {
	*nftables.Conn
	baseOK   map[Family]bool
	batching bool
}

// nftConn returns the connection of the calling thread's namespace,
// locked for the caller until done is called: no two callers' messages
// may share a batch. done(err) with an error drops the connection, so a
// failed exchange can leave nothing unread for the next caller.
func nftConn() (c nftSession, done func(error), err error) {
	var st syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), syscall.Gettid()), &st); err != nil {
		return c, nil, err
	}
	nftSocks.Lock()
	if nftSocks.byNS == nil {
		nftSocks.byNS = map[uint64]*nftables.Conn{}
		nftSocks.baseOK = map[uint64]map[Family]bool{}
	}
	if nftSocks.baseOK[st.Ino] == nil {
		nftSocks.baseOK[st.Ino] = map[Family]bool{}
	}
	conn := nftSocks.byNS[st.Ino]
	if conn == nil {
		if conn, err = nftables.New(nftables.AsLasting()); err != nil {
			nftSocks.Unlock()
			return c, nil, err
		}
		nftSocks.byNS[st.Ino] = conn
	}
	ino := st.Ino
	return nftSession{conn, nftSocks.baseOK[ino], nftSocks.batching}, func(err error) {
		if err != nil {
			_ = conn.CloseLasting()
			delete(nftSocks.byNS, ino)
			delete(nftSocks.baseOK, ino)
		}
		nftSocks.Unlock()
	}, nil
}

var batchMu sync.Mutex

// Batch runs fn with the nftables backend's changes queued rather than
// committed, and commits them as one kernel transaction at its end. The
// kernel frees each transaction's leftovers after an RCU grace period,
// and a closing socket waits for that, so one transaction instead of one
// per change keeps that wait to one. If fn fails or the transaction is
// refused, nothing queued is applied and fn runs again with each change
// committed on its own, so its effects and errors are the precise ones.
// Changes of the iptables backend inside fn are applied at once as ever.
// Only one goroutine may change nftables state during fn.
func Batch(fn func() error) error {
	batchMu.Lock()
	defer batchMu.Unlock()
	setBatching(true)
	err := fn()
	setBatching(false)
	if err == nil {
		var c nftSession
		var done func(error)
		if c, done, err = nftConn(); err == nil {
			err = c.Flush()
			done(err)
			if err == nil {
				return nil
			}
		}
	} else {
		dropNFT() // discard what fn queued
	}
	return fn()
}

func setBatching(on bool) {
	nftSocks.Lock()
	nftSocks.batching = on
	nftSocks.Unlock()
}

// dropNFT forgets this process's connections, with whatever they queued.
func dropNFT() {
	nftSocks.Lock()
	defer nftSocks.Unlock()
	for ino, c := range nftSocks.byNS {
		_ = c.CloseLasting()
		delete(nftSocks.byNS, ino)
		delete(nftSocks.baseOK, ino)
	}
}
