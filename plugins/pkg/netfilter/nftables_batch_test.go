package netfilter

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// Batch commits what its function queued as one transaction; when that
// transaction is refused, or the function fails, nothing queued lands and
// the function runs again unbatched, so its errors are the precise ones.
func TestNFTablesBatch(t *testing.T) {
	testenv.RequireRoot(t)
	host := testenv.NewNS(t, testenv.Prefix()+"-host")
	o := Owner{Network: "net", ContainerID: "batch", IfName: "eth0"}
	masq := MasqSpec{Owner: o, IP: net.ParseIP("10.66.0.2"), Bridge: "br0"}
	fwd := ForwardSpec{Owner: o, IP: net.ParseIP("10.66.0.2"), Bridge: "br0", Protect: true}
	pm := func(id, ip string) PortMapSpec {
		return PortMapSpec{Owner: Owner{Network: "net", ContainerID: id, IfName: "eth0"}, ContainerIP: net.ParseIP(ip),
			Mappings: []PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}}
	}
	err := ns.WithNetNSPath(host.Path(), func(ns.NetNS) error {
		b, err := newNFTables(IPv4, Options{})
		if err != nil {
			return err
		}
		runs := 0
		if err := Batch(func() error {
			runs++
			return errors.Join(b.AddMasquerade(masq), b.AddForward(fwd))
		}); err != nil || runs != 1 {
			t.Fatalf("batch of two adds: %v after %d runs", err, runs)
		}
		if err := errors.Join(b.CheckMasquerade(masq), b.CheckForward(fwd)); err != nil {
			t.Errorf("after the batch: %v", err)
		}
		// A refused transaction: the second mapping's port is taken.
		if err := b.AddPortMappings(pm("first", "10.66.0.3")); err != nil {
			return err
		}
		runs = 0
		err = Batch(func() error {
			runs++
			return errors.Join(b.DelMasquerade(masq), b.AddPortMappings(pm("second", "10.66.0.4")))
		})
		if err == nil || !strings.Contains(err.Error(), "already published by container first") || runs != 2 {
			t.Errorf("refused batch: %v after %d runs, want the conflict named after 2", err, runs)
		}
		// The rerun deleted the masquerade on its own, precisely.
		if b.CheckMasquerade(masq) == nil {
			t.Error("the rerun left the masquerade in place")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
