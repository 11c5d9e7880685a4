package reference

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
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter/ipt"

	"crypto/sha512"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"

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

// RemovePorts deletes, in family f, the reference portmap's
// state for the attachment, with either of its backends.
func RemovePorts(f netfilter.Family, network, containerID string, opts netfilter.Options) error {
	return errors.Join(
		removeRefNFT(f.NFT(), "cni_hostport", "", containerID),
		purgeIPTables(f, opts, []string{refChain(network, containerID, "DN-"), refChain(network, containerID, "SN-")},
			fmt.Sprintf(`--comment "dnat name: \"%s\" id: \"%s\""`, network, containerID)))
}

// RemoveMasq deletes, in family f, the reference bridge's ipMasq
// state for the attachment, with either of its backends.
func RemoveMasq(f netfilter.Family, network, containerID, ifname string, opts netfilter.Options) error {
	comment := fmt.Sprintf("%s-%s, net: %s, if: %s, id: %s",
		refHash(16, "", network), refHash(16, "", ifname+":"+containerID),
		strings.ReplaceAll(network, `"`, ``), strings.ReplaceAll(ifname, `"`, ``), strings.ReplaceAll(containerID, `"`, ``))
	var nftErr error
	if f == netfilter.IPv4 { // one inet table serves both families
		nftErr = removeRefNFT(nftables.TableFamilyINet, "cni_plugins_masquerade", "masq_checks", comment)
	}
	return errors.Join(nftErr,
		purgeIPTables(f, opts, []string{refChain(network, containerID, "")},
			fmt.Sprintf(`--comment "name: \"%s\" id: \"%s\""`, network, containerID)))
}

// removeRefNFT deletes the rules of table (in chain, or in every chain)
// whose comment is exactly comment.
func removeRefNFT(fam nftables.TableFamily, table, chain, comment string) (err error) {
	if !netfilter.NFTablesAvailable() {
		return nil
	}
	c, done, err := netfilter.NFTConn()
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
			if ipt.RuleComment(r) == comment {
				if err := c.DelRule(r); err != nil {
					return err
				}
				found++
			}
		}
	}
	if found == 0 {
		return nil
	}
	return c.Flush()
}

// purgeIPTables deletes the reference's per-container chains and every
// rule carrying comment from the nat table of the iptables that
// iptables-save resolves to.
func purgeIPTables(f netfilter.Family, opts netfilter.Options, chains []string, comment string) error {
	b, err := ipt.New(f, opts)
	if err != nil {
		return nil // no iptables: nothing of the reference's there
	}
	return b.Purge("nat", chains, comment)
}

// Attachment is a container the reference plugins set up on a
// network, as found in their rules' comments.
type Attachment struct{ Network, ContainerID, IfName string }

// The reference's comments, compiled at first use: every bridge and
// portmap process links this package, few list the reference's state,
// and compiling at init cost each process's start about 0.3 ms.
var (
	refIPTComment = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`--comment "(?:dnat )?name: \\"([^"\\]*)\\" id: \\"([^"\\]*)\\""`)
	})
	refNFTComment = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`, net: (.*), if: (.*), id: (.*)$`) })
)

// Attachments lists the containers of network ("" for any)
// whose state the reference plugins left in family f: from the iptables nat table's
// comments (network and ID) and the nftables masquerade comments
// (network, interface and ID). The reference's nftables port rules name
// only the container, so a container it set up with nftables and without
// ipMasq cannot be told apart from another network's and is not listed.
// Reading the iptables table grows with it: this is for GC, not DEL.
func Attachments(f netfilter.Family, network string, opts netfilter.Options) ([]Attachment, error) {
	seen := map[Attachment]bool{}
	var out []Attachment
	add := func(a Attachment) {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	if b, err := ipt.New(f, opts); err == nil {
		snap, err := b.Snapshot("nat")
		if err != nil {
			return nil, err
		}
		for _, r := range snap.Lines() {
			if m := refIPTComment().FindStringSubmatch(r); m != nil && (network == "" || m[1] == network) {
				add(Attachment{Network: m[1], ContainerID: m[2]})
			}
		}
	}
	if f == netfilter.IPv4 && netfilter.NFTablesAvailable() {
		c, done, err := netfilter.NFTConn()
		if err != nil {
			return nil, err
		}
		t := &nftables.Table{Name: "cni_plugins_masquerade", Family: nftables.TableFamilyINet}
		rules, _ := c.GetRules(t, &nftables.Chain{Name: "masq_checks", Table: t})
		done(nil)
		for _, r := range rules {
			if m := refNFTComment().FindStringSubmatch(ipt.RuleComment(r)); m != nil && (network == "" || m[1] == network) {
				add(Attachment{Network: m[1], ContainerID: m[3], IfName: m[2]})
			}
		}
	}
	return out, nil
}

// Collect removes the reference's state (ports and masquerade)
// of every container of network it set up that is not in live. Both
// bridge's and portmap's GC call it: whichever runs first removes the
// comments the other would find the container by.
func Collect(network string, live map[string]bool, opts netfilter.Options) error {
	var errs []error
	for _, f := range netfilter.BothFamilies {
		refs, err := Attachments(f, network, opts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, a := range refs {
			if live[a.ContainerID] {
				continue
			}
			errs = append(errs,
				RemovePorts(f, network, a.ContainerID, opts),
				RemoveMasq(f, network, a.ContainerID, a.IfName, opts))
		}
	}
	return errors.Join(errs...)
}
