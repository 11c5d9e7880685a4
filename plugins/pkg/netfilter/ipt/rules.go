package ipt

// Chains this project owns in the nat table. Names differ from the reference
// plugins' (CNI-HOSTPORT-*) so both can run side by side during a migration.
//
//	PREROUTING  -m addrtype --dst-type LOCAL -j DNET-HOSTPORTS
//	OUTPUT      -m addrtype --dst-type LOCAL -j DNET-HOSTPORTS
//	POSTROUTING -j DNET-POSTROUTING   (masquerade marked hairpin/localhost flows)
//	POSTROUTING -j DNET-MASQ          (bridge ipMasq, per network: masq.go)
//	DNET-HOSTPORTS  one entry rule per owner and protocol (multiport) -> DNET-DN-<tag>
//	DNET-DN-<tag>   per owner: mark for masquerade, then DNAT
import (
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"

	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
)

const (
	chainPrefix      = "DNET-" // every chain of ours, in every table
	ChainHostPorts   = "DNET-HOSTPORTS"
	ChainPostrouting = "DNET-POSTROUTING"
	ChainMasq        = "DNET-MASQ"
	chainDNATPrefix  = "DNET-DN-"

	// multiport takes at most 15 ports per rule.
	multiportMax = 15
)

func DNATChain(o netfilter.Owner) string { return chainDNATPrefix + o.Tag() }

func markValue(bit int) string {
	v := uint32(1) << uint(bit)
	return fmt.Sprintf("0x%x/0x%x", v, v)
}

func joinHostPort(ip net.IP, port int) string {
	if ip.To4() != nil {
		return ip.String() + ":" + strconv.Itoa(port)
	}
	return "[" + ip.String() + "]:" + strconv.Itoa(port)
}

// ownerRules are spec's rules for family f: those of the owner's DNAT
// chain, and the entry rules in DNET-HOSTPORTS that jump to it.
func ownerRules(spec netfilter.PortMapSpec, f netfilter.Family) (chain [][]string, entries [][]string) {
	target := DNATChain(spec.Owner)
	comment := spec.Owner.Comment()
	portsByProto := map[string][]int{}
	seen := map[string]bool{}
	for _, m := range spec.Mappings {
		hostIP, ok := netfilter.HostIPFor(m, f)
		if !ok {
			continue
		}
		key := m.Protocol + "/" + strconv.Itoa(m.HostPort)
		if !seen[key] {
			seen[key] = true
			portsByProto[m.Protocol] = append(portsByProto[m.Protocol], m.HostPort)
		}
		match := []string{"-p", m.Protocol, "-m", m.Protocol, "--dport", strconv.Itoa(m.HostPort)}
		if hostIP != "" {
			match = append([]string{"-d", hostIP + f.HostPrefix()}, match...)
		}
		withComment := append(append([]string{}, match...), "-m", "comment", "--comment", comment)
		if spec.SNAT {
			mark := []string{"-j", "MARK", "--set-xmark", markValue(spec.MarkBit)}
			if spec.ExternalMark != "" {
				mark = []string{"-j", spec.ExternalMark}
			}
			switch {
			case spec.MasqAll:
				chain = append(chain, append(append([]string{}, withComment...), mark...))
			default:
				if spec.ContainerNet != nil {
					chain = append(chain, append(append([]string{"-s", spec.ContainerNet.String()}, withComment...), mark...))
				}
				if f == netfilter.IPv4 {
					// Connections to 127.0.0.1:hostPort from the host itself.
					chain = append(chain, append(append([]string{"-s", "127.0.0.0/8"}, withComment...), mark...))
				}
			}
		}
		chain = append(chain, append(withComment, "-j", "DNAT", "--to-destination", joinHostPort(spec.ContainerIP, m.ContainerPort)))
	}

	protos := make([]string, 0, len(portsByProto))
	for p := range portsByProto {
		protos = append(protos, p)
	}
	sort.Strings(protos)
	for _, proto := range protos {
		ports := portsByProto[proto]
		for i := 0; i < len(ports); i += multiportMax {
			end := min(i+multiportMax, len(ports))
			list := make([]string, 0, end-i)
			for _, p := range ports[i:end] {
				list = append(list, strconv.Itoa(p))
			}
			args := []string{"-p", proto, "-m", "comment", "--comment", comment,
				"-m", "multiport", "--dports", strings.Join(list, ",")}
			args = append(args, spec.Conditions...)
			entries = append(entries, append(args, "-j", target))
		}
	}
	return chain, entries
}

// portmapRules writes spec's rules into txn: the owner's DNAT chain
// (declared, so emptied if it exists) and its entry rules.
func portmapRules(txn *ruleTxn, spec netfilter.PortMapSpec, f netfilter.Family) {
	txn.declareChain(DNATChain(spec.Owner))
	appendOwnerRules(txn, spec, f)
}

// portmapAddFast is ADD without reading the table, once the caller has
// required the base (requireBase). It commits only if the owner
// has no chain yet (-N fails otherwise, so a re-ADD never duplicates entry
// rules); else nothing changes and the caller falls back to a snapshot.
func portmapAddFast(txn *ruleTxn, spec netfilter.PortMapSpec, f netfilter.Family) {
	txn.newChain(DNATChain(spec.Owner))
	appendOwnerRules(txn, spec, f)
}

// appendOwnerRules appends the rules of ownerRules to their chains.
func appendOwnerRules(txn *ruleTxn, spec netfilter.PortMapSpec, f netfilter.Family) {
	chain, entries := ownerRules(spec, f)
	for _, r := range chain {
		txn.add(DNATChain(spec.Owner), r...)
	}
	for _, r := range entries {
		txn.add(ChainHostPorts, r...)
	}
}

// portmapDelFast is DEL from the record alone: it deletes the entry rules
// exactly as ADD wrote them, then the owner's chain. Any rule or chain not
// there makes it fail without a change, and the caller falls back.
func portmapDelFast(txn *ruleTxn, spec netfilter.PortMapSpec, f netfilter.Family) {
	_, entries := ownerRules(spec, f)
	for _, r := range entries {
		txn.del(ChainHostPorts, r...)
	}
	target := DNATChain(spec.Owner)
	txn.flushChain(target)
	txn.deleteChain(target)
}

func multicastNet(f netfilter.Family) string {
	if f == netfilter.IPv4 {
		return "224.0.0.0/4"
	}
	return "ff00::/8"
}

// masqRules are the bridge's outbound masquerade for one container:
// traffic from its address that leaves through any interface but the
// bridge, unless it goes to one of spec.Except (a RETURN each, first).
func masqRules(spec netfilter.MasqSpec, f netfilter.Family) [][]string {
	src := spec.IP.String() + f.HostPrefix()
	var rules [][]string
	for _, n := range spec.Except {
		rules = append(rules, []string{"-s", src, "-d", n.String(), "-m", "comment", "--comment", spec.Owner.Comment(), "-j", "RETURN"})
	}
	return append(rules, []string{"-s", src, "!", "-o", spec.Bridge,
		"-m", "comment", "--comment", spec.Owner.Comment(),
		"!", "-d", multicastNet(f), "-j", "MASQUERADE"})
}
