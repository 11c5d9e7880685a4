package netfilter

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Every nf_tables request of a process, whichever package makes it, goes
// through lasting netlink sockets, per network namespace: google/nftables's
// own, and a second for the raw requests it cannot send (NFTSession.Raw),
// opened on first use. Closing an
// nfnetlink socket while the kernel still holds committed deletions to
// free makes the close wait for an RCU grace period (nf_tables flushes its
// destroy work on NETLINK_URELEASE), so a socket per request, as
// nftables.New() makes by default, would cost a grace period for each
// request after the first DEL of a process. Plugin processes live in one
// namespace; tests switch threads between namespaces, hence the key.
var nftSocks struct {
	sync.Mutex
	byNS  map[uint64]*nftables.Conn
	raw   map[uint64]*netlink.Conn
	cache map[uint64]map[any]bool
}

// NFTSession is a connection to the calling thread's namespace, and what
// this process has learned of that namespace's state (the backend's base
// found complete, say), forgotten with the connection.
type NFTSession struct {
	*nftables.Conn
	Known map[any]bool
	// Raw sends one request as it is (netlink.Dump in its flags for a
	// dump) and returns its replies undecoded: for a question whose answer
	// needs little decoding (how many rules a chain holds), which
	// google/nftables would decode whole.
	Raw func(req netlink.Message) ([]netlink.Message, error)
}

// NFTDial opens a session; NFTConn is the real one, tests pass a fake.
type NFTDial func() (c NFTSession, done func(error), err error)

// NFTConn returns the session of the calling thread's namespace, locked
// for the caller until done is called: no two callers' messages may share
// a batch. done(err) with an error drops the connection, so a failed
// exchange leaves nothing queued or unread for the next caller.
func NFTConn() (c NFTSession, done func(error), err error) {
	var st syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), syscall.Gettid()), &st); err != nil {
		return c, nil, err
	}
	nftSocks.Lock()
	if nftSocks.byNS == nil {
		nftSocks.byNS = map[uint64]*nftables.Conn{}
		nftSocks.raw = map[uint64]*netlink.Conn{}
		nftSocks.cache = map[uint64]map[any]bool{}
	}
	if nftSocks.cache[st.Ino] == nil {
		nftSocks.cache[st.Ino] = map[any]bool{}
	}
	conn := nftSocks.byNS[st.Ino]
	if conn == nil {
		if conn, err = nftables.New(nftables.AsLasting(), nftables.WithSockOptions(BigBuffers)); err != nil {
			nftSocks.Unlock()
			return c, nil, err
		}
		nftSocks.byNS[st.Ino] = conn
	}
	ino := st.Ino
	return NFTSession{conn, nftSocks.cache[ino], func(req netlink.Message) ([]netlink.Message, error) { return rawRequest(ino, req) }}, func(err error) {
		if err != nil {
			_ = conn.CloseLasting()
			delete(nftSocks.byNS, ino)
			delete(nftSocks.cache, ino)
			if raw := nftSocks.raw[ino]; raw != nil {
				_ = raw.Close()
				delete(nftSocks.raw, ino)
			}
		}
		nftSocks.Unlock()
	}, nil
}

// rawRequest runs req on the namespace's second lasting socket, opened on
// first use (the session's lock is held): google/nftables keeps its own
// socket to itself. Lasting for the same reason as the first.
func rawRequest(ino uint64, req netlink.Message) ([]netlink.Message, error) {
	raw := nftSocks.raw[ino]
	if raw == nil {
		var err error
		if raw, err = netlink.Dial(unix.NETLINK_NETFILTER, nil); err != nil {
			return nil, err
		}
		nftSocks.raw[ino] = raw
	}
	req.Header.Flags |= netlink.Request
	replies, err := raw.Execute(req)
	if err != nil && !answered(req, err) { // replies may be left unread: a new socket next time
		_ = raw.Close()
		delete(nftSocks.raw, ino)
	}
	return replies, err
}

// answered reports whether err is the kernel's error reply to a request
// that is not a dump: that one message ended the exchange, nothing is
// left unread, and the socket serves the next request. On a fresh host
// every chain asked about is missing (ENOENT); a socket per refusal cost
// a dozen system calls each.
func answered(req netlink.Message, err error) bool {
	var op *netlink.OpError
	if req.Header.Flags&netlink.Dump == netlink.Dump || !errors.As(err, &op) {
		return false
	}
	_, reply := op.Err.(syscall.Errno) // a failed system call is wrapped in os.SyscallError
	return reply
}

// ForgetKnown drops what every session has learned of its namespace's
// state: a plugin's run is too short for that state to change under it,
// the node agent's is not, and it calls this before each restore.
func ForgetKnown() {
	nftSocks.Lock()
	defer nftSocks.Unlock()
	for ino := range nftSocks.cache {
		nftSocks.cache[ino] = map[any]bool{}
	}
}

// NFTablesAvailable reports whether the kernel answers nf_tables netlink.
// Asked once per process: a plugin run is short, and the answer is the same
// for backend selection, each family's backend and the DEL fallback.
var NFTablesAvailable = sync.OnceValue(func() bool {
	c, done, err := NFTConn()
	if err != nil {
		return false
	}
	_, err = c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	done(err)
	return err == nil
})

// batchBuffer is the socket buffer a transaction may fill. A batch is one
// sendmsg, which the kernel refuses when it exceeds the send buffer
// (208 KiB by default): ten mappings with a thousand-entry allowlist each
// are about 1.2 MB. Plugins run as root, so the FORCE options lift the
// system's limit for this socket alone.
const batchBuffer = 16 << 20

// BigBuffers gives a netlink socket batchBuffer of send and receive
// buffer: what a batch needs, and what a monitor needs to take in the
// notifications of a thousand attachments restored at once.
func BigBuffers(c *netlink.Conn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil // not a real socket (tests): keep the default
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		for _, opt := range []int{unix.SO_SNDBUFFORCE, unix.SO_RCVBUFFORCE} {
			if e := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, batchBuffer); e != nil {
				serr = e
			}
		}
	})
	if err == nil && serr != nil { // not root: as large as the system allows
		_ = c.SetWriteBuffer(batchBuffer)
		_ = c.SetReadBuffer(batchBuffer)
	}
	return nil
}
