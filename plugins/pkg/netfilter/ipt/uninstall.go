package ipt

import (
	"fmt"
	"strings"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// Uninstall removes everything of ours from family f's iptables, in every
// flavour whose tables exist here: each rule of another chain that jumps
// to one of our chains (DNET-*) or carries our comment, then our chains.
// Only tables already loaded are read (reading a legacy table loads it).
func Uninstall(f netfilter.Family, opts netfilter.Options) error {
	for _, fl := range flavours() {
		b, err := flavourTables(fl, f, opts)
		if err != nil {
			continue // that flavour is not installed: nothing of ours there
		}
		for _, table := range []string{"raw", "mangle", "nat", "filter"} {
			if !b.tableLoaded(table) {
				continue
			}
			err := b.editTable(table, nil, func(txn *ruleTxn, snap *Snapshot) error {
				for chain, rules := range snap.rules {
					if isOurs(chain) {
						continue // flushed with the chain below
					}
					for _, r := range rules {
						if strings.Contains(r, `"`+netfilter.TagPrefix) || strings.Contains(r, "-j DNET-") || strings.Contains(r, "-g DNET-") {
							txn.deleteSaved(chain, r)
						}
					}
				}
				for chain := range snap.chains {
					if isOurs(chain) {
						txn.declareChain(chain) // flushes it, so it can be deleted
					}
				}
				for chain := range snap.chains {
					if isOurs(chain) {
						txn.deleteChain(chain)
					}
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("iptables-%s %s table: %w", fl.name, table, err)
			}
		}
	}
	return nil
}

func isOurs(chain string) bool { return strings.HasPrefix(chain, "DNET-") }

// tableLoaded reports whether table exists in this flavour here.
func (b *Backend) tableLoaded(table string) bool {
	if b.nftBacked {
		if !netfilter.NFTablesAvailable() {
			return false
		}
		c, done, err := netfilter.NFTConn()
		if err != nil {
			return false
		}
		defer done(nil)
		_, err = c.ListTableOfFamily(table, b.family.NFT())
		return err == nil
	}
	return LegacyTablePresent(b.family, table)
}
