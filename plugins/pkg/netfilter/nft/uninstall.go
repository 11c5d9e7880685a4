package nft

import (
	"github.com/google/nftables"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// Uninstall deletes family f's table of ours (dnet), with every chain,
// set, map and element in it: the nftables backend's state and the
// iptables backend's allowlists. No table is not an error.
func Uninstall(f netfilter.Family) error {
	if !netfilter.NFTablesAvailable() {
		return nil
	}
	c, done, err := netfilter.NFTConn()
	if err != nil {
		return err
	}
	t, err := c.ListTableOfFamily(Table, f.NFT())
	if err != nil {
		done(nil)
		return nil // no table of ours
	}
	c.DelTable(&nftables.Table{Name: t.Name, Family: t.Family})
	err = c.Flush()
	done(err)
	return err
}
