package netfilter

import (
	"errors"
	"maps"
	"os"
	"syscall"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/google/nftables"
	"github.com/mdlayher/netlink"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// A raw socket stays open after the kernel's refusal of a single request
// (a chain not there yet), and is dropped after anything that may leave
// replies unread.
func TestAnswered(t *testing.T) {
	one := netlink.Message{}
	dump := netlink.Message{Header: netlink.Header{Flags: netlink.Dump}}
	for _, c := range []struct {
		name string
		req  netlink.Message
		err  error
		want bool
	}{
		{"error reply to one request", one, &netlink.OpError{Op: "receive", Err: syscall.ENOENT}, true},
		{"error reply inside a dump", dump, &netlink.OpError{Op: "receive", Err: syscall.ENOENT}, false},
		{"failed receive", one, &netlink.OpError{Op: "receive", Err: os.NewSyscallError("recvmsg", syscall.EAGAIN)}, false},
		{"not netlink's", one, errors.New("validate: mismatched sequence"), false},
	} {
		if got := answered(c.req, c.err); got != c.want {
			t.Errorf("%s: answered = %v, want %v", c.name, got, c.want)
		}
	}
}

// With the kernel: the raw socket that was refused a missing chain still
// answers for the next, which is there, and is the same socket.
func TestChainUseAfterAMissingChain(t *testing.T) {
	testenv.RequireRoot(t)
	host := testenv.NewNS(t, testenv.Prefix()+"-host")
	if out, err := host.Run("nft", "add table ip dnettest; add chain ip dnettest a; add chain ip dnettest b; add rule ip dnettest a jump b; add rule ip dnettest a accept"); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	err := ns.WithNetNSPath(host.Path(), func(ns.NetNS) error {
		c, done, err := NFTConn()
		if err != nil {
			return err
		}
		defer done(nil)
		if use, err := c.ChainUse(nftables.TableFamilyIPv4, "dnettest", "missing"); err != nil || len(use) != 0 {
			t.Errorf("ChainUse(missing) = %v, %v; want nothing", use, err)
		}
		first := nftSocks.raw[rawKey(t)]
		use, err := c.ChainUse(nftables.TableFamilyIPv4, "dnettest", "a", "b")
		if err != nil {
			return err
		}
		if want := map[string]uint32{"a": 2, "b": 1}; !maps.Equal(use, want) {
			t.Errorf("ChainUse(a, b) = %v, want %v", use, want)
		}
		if nftSocks.raw[rawKey(t)] != first {
			t.Errorf("the raw socket was opened again after the kernel refused a missing chain")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// rawKey is the calling thread's namespace, as NFTConn keys its sockets.
func rawKey(t *testing.T) uint64 {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/thread-self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}
