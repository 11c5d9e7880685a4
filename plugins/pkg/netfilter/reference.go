package netfilter

// What the reference plugins (containernetworking/plugins v1.x) install
// for an attachment, and its removal: a node switched from them to these
// plugins with containers running must not keep the reference's DNAT
// and masquerade for a container that is gone, pointing at an address
// we will hand to another.
//
//	iptables, nat table:
//	  CNI-DN-<h>   per container, h = sha512(network+containerID); its entry
//	               rules in CNI-HOSTPORT-DNAT carry `dnat name: "N" id: "C"`
//	  CNI-SN-<h>   the same, from older versions
//	  CNI-<h>      bridge ipMasq; POSTROUTING jumps to it with `name: "N" id: "C"`
//	nftables:
//	  table cni_hostport            portmap: rules commented with the container ID
//	  table inet cni_plugins_masquerade  bridge ipMasq, both families: rules in
//	                                     masq_checks commented "<hash>, net: N, if: I, id: C"

import (
	"crypto/sha512"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
)

// refHash is the reference's utils.MustFormatHashWithPrefix.
func refHash(length int, prefix, toHash string) string {
	return fmt.Sprintf("%s%x", prefix, sha512.Sum512([]byte(toHash)))[:length]
}

// refChain is the reference's utils.MustFormatChainNameWithPrefix.
func refChain(network, containerID, prefix string) string {
	return refHash(28, "CNI-"+prefix, network+containerID)
}

// RemoveReferencePorts deletes, in family f, the reference portmap's
// state for the attachment, with either of its backends.
func RemoveReferencePorts(f Family, network, containerID string, opts Options) error {
	return errors.Join(
		removeRefNFT(nftFamily(f), "cni_hostport", "", containerID),
		removeRefIPTables(f, opts, []string{refChain(network, containerID, "DN-"), refChain(network, containerID, "SN-")},
			fmt.Sprintf(`--comment "dnat name: \"%s\" id: \"%s\""`, network, containerID)))
}

// RemoveReferenceMasq deletes, in family f, the reference bridge's ipMasq
// state for the attachment, with either of its backends.
func RemoveReferenceMasq(f Family, network, containerID, ifname string, opts Options) error {
	comment := fmt.Sprintf("%s-%s, net: %s, if: %s, id: %s",
		refHash(16, "", network), refHash(16, "", ifname+":"+containerID),
		strings.ReplaceAll(network, `"`, ``), strings.ReplaceAll(ifname, `"`, ``), strings.ReplaceAll(containerID, `"`, ``))
	var nftErr error
	if f == IPv4 { // one inet table serves both families
		nftErr = removeRefNFT(nftables.TableFamilyINet, "cni_plugins_masquerade", "masq_checks", comment)
	}
	return errors.Join(nftErr,
		removeRefIPTables(f, opts, []string{refChain(network, containerID, "")},
			fmt.Sprintf(`--comment "name: \"%s\" id: \"%s\""`, network, containerID)))
}

// removeRefNFT deletes the rules of table (in chain, or in every chain)
// whose comment is exactly comment.
func removeRefNFT(fam nftables.TableFamily, table, chain, comment string) (err error) {
	if !NFTablesAvailable() {
		return nil
	}
	c, done, err := nftConn()
	if err != nil {
		return err
	}
	defer func() { done(err) }()
	t, err := c.ListTableOfFamily(table, fam)
	if err != nil {
		return nil // no such table: the reference never used nftables here
	}
	var chains []string
	if chain != "" {
		chains = []string{chain}
	} else {
		all, err := c.ListChainsOfTableFamily(fam)
		if err != nil {
			return err
		}
		for _, ch := range all {
			if ch.Table.Name == table {
				chains = append(chains, ch.Name)
			}
		}
	}
	found := 0
	for _, name := range chains {
		rules, err := c.GetRules(t, &nftables.Chain{Name: name, Table: t})
		if err != nil {
			continue
		}
		for _, r := range rules {
			if ruleComment(r) == comment {
				if err := c.DelRule(r); err != nil {
					return err
				}
				found++
			}
		}
	}
	if found == 0 || c.batching {
		return nil
	}
	return c.Flush()
}

// removeRefIPTables deletes the reference's per-container chains and
// every rule carrying comment from the nat table of the iptables that
// iptables-save resolves to. It reads the table only when one of the
// chains is there: found over netlink with iptables-nft; with
// iptables-legacy, by a transaction that creates and deletes each chain,
// which iptables-restore refuses when one exists.
func removeRefIPTables(f Family, opts Options, chains []string, comment string) error {
	ipt, err := newIPTables(f, opts)
	if err != nil {
		return nil // no iptables: nothing of the reference's there
	}
	if ipt.nftBacked {
		if !nftHasAnyChain(f, "nat", chains) {
			return nil
		}
	} else {
		if !legacyTablePresent(f, "nat") {
			return nil
		}
		probe := &ruleTxn{table: "nat"}
		for _, ch := range chains {
			probe.newChain(ch)
			probe.deleteChain(ch)
		}
		if ipt.apply(probe) == nil {
			return nil // every chain could be made: none was there
		}
	}
	return ipt.editTable("nat", nil, func(txn *ruleTxn, snap *tableSnapshot) error {
		for chain := range snap.rules {
			if slices.Contains(chains, chain) {
				continue // emptied with the chain below
			}
			for _, r := range snap.matching(chain, comment) {
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
func nftHasAnyChain(f Family, table string, chains []string) bool {
	c, done, err := nftConn()
	if err != nil {
		return false
	}
	defer done(nil)
	for _, ch := range chains {
		if _, err := c.ListChain(&nftables.Table{Name: table, Family: nftFamily(f)}, ch); err == nil {
			return true
		}
	}
	return false
}
