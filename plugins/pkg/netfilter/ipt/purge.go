package ipt

import (
	"slices"

	"github.com/google/nftables"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// Purge deletes chains (emptied first) and every rule of table carrying
// comment: how another plugin set's per-container state is removed. It
// reads the table only when one of the chains is there: found over
// netlink with iptables-nft; with iptables-legacy, by a transaction that
// creates and deletes each chain, which iptables-restore refuses when one
// exists.
func (b *Backend) Purge(table string, chains []string, comment string) error {
	if b.nftBacked {
		if !b.nftHasAnyChain(table, chains) {
			return nil
		}
	} else {
		if !LegacyTablePresent(b.family, table) {
			return nil
		}
		probe := &ruleTxn{table: table}
		for _, ch := range chains {
			probe.newChain(ch)
			probe.deleteChain(ch)
		}
		if b.apply(probe) == nil {
			return nil // every chain could be made: none was there
		}
	}
	return b.editTable(table, nil, func(txn *ruleTxn, snap *Snapshot) error {
		for chain := range snap.rules {
			if slices.Contains(chains, chain) {
				continue // emptied with the chain below
			}
			for _, r := range snap.Matching(chain, comment) {
				txn.deleteSaved(chain, r)
			}
		}
		for _, ch := range chains {
			if snap.chains[ch] {
				txn.declareChain(ch) // flushes it, so it can be deleted
				txn.deleteChain(ch)
			}
		}
		return nil
	})
}

// nftHasAnyChain reports whether iptables-nft's table holds one of chains.
func (b *Backend) nftHasAnyChain(table string, chains []string) bool {
	c, done, err := netfilter.NFTConn()
	if err != nil {
		return false
	}
	defer done(nil)
	for _, ch := range chains {
		if _, err := c.ListChain(&nftables.Table{Name: table, Family: b.family.NFT()}, ch); err == nil {
			return true
		}
	}
	return false
}
