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
	"regexp"
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

// ReferenceAttachment is a container the reference plugins set up on a
// network, as found in their rules' comments.
type ReferenceAttachment struct{ Network, ContainerID, IfName string }

var (
	refIPTComment = regexp.MustCompile(`--comment "(?:dnat )?name: \\"([^"\\]*)\\" id: \\"([^"\\]*)\\""`)
	refNFTComment = regexp.MustCompile(`, net: (.*), if: (.*), id: (.*)$`)
)

// ReferenceAttachments lists the containers of network ("" for any)
// whose state the reference plugins left in family f: from the iptables nat table's
// comments (network and ID) and the nftables masquerade comments
// (network, interface and ID). The reference's nftables port rules name
// only the container, so a container it set up with nftables and without
// ipMasq cannot be told apart from another network's and is not listed.
// Reading the iptables table grows with it: this is for GC, not DEL.
func ReferenceAttachments(f Family, network string, opts Options) ([]ReferenceAttachment, error) {
	seen := map[ReferenceAttachment]bool{}
	var out []ReferenceAttachment
	add := func(a ReferenceAttachment) {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	if ipt, err := newIPTables(f, opts); err == nil {
		snap, err := ipt.snapshot("nat")
		if err != nil {
			return nil, err
		}
		for _, rules := range snap.rules {
			for _, r := range rules {
				if m := refIPTComment.FindStringSubmatch(r); m != nil && (network == "" || m[1] == network) {
					add(ReferenceAttachment{Network: m[1], ContainerID: m[2]})
				}
			}
		}
	}
	if f == IPv4 && NFTablesAvailable() {
		c, done, err := nftConn()
		if err != nil {
			return nil, err
		}
		t := &nftables.Table{Name: "cni_plugins_masquerade", Family: nftables.TableFamilyINet}
		rules, _ := c.GetRules(t, &nftables.Chain{Name: "masq_checks", Table: t})
		done(nil)
		for _, r := range rules {
			if m := refNFTComment.FindStringSubmatch(ruleComment(r)); m != nil && (network == "" || m[1] == network) {
				add(ReferenceAttachment{Network: m[1], ContainerID: m[3], IfName: m[2]})
			}
		}
	}
	return out, nil
}

// CollectReference removes the reference's state (ports and masquerade)
// of every container of network it set up that is not in live. Both
// bridge's and portmap's GC call it: whichever runs first removes the
// comments the other would find the container by.
func CollectReference(network string, live map[string]bool, opts Options) error {
	var errs []error
	for _, f := range BothFamilies {
		refs, err := ReferenceAttachments(f, network, opts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, a := range refs {
			if live[a.ContainerID] {
				continue
			}
			errs = append(errs,
				RemoveReferencePorts(f, network, a.ContainerID, opts),
				RemoveReferenceMasq(f, network, a.ContainerID, a.IfName, opts))
		}
	}
	return errors.Join(errs...)
}
