// Package describe reads, with the tools an operator would use (nft,
// iptables-save -c), the kernel state that carries one published mapping:
// what dnetctl explain shows at each hop.
package describe

import (
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter/ipt"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter/nft"
)

// MappingState is the kernel state that carries one published mapping, as
// nft and iptables-save print it, counters included: what dnetctl explain
// shows at each hop. It is read with the tools an operator would use, so
// the lines are theirs to recognise.
type MappingState struct {
	DNAT    []string // what DNATs the mapping; empty when nothing does
	Forward []string // the drops before DNAT and in FORWARD, and the FORWARD accepts for the bridge
	Masq    []string // the masquerade of replies, hairpin and outbound traffic
}

// byBackend reads a mapping's DNAT and masquerade, by the backend name a
// record holds.
var byBackend = map[string]func(netfilter.Family, netfilter.PortMapSpec, netfilter.PortMapping) MappingState{
	netfilter.NameNFTables: describeNFT,
	netfilter.NameIPTables: describeIPTables,
}

// Mapping reads the state of m, one of spec's mappings, installed by
// backend (the record's) for a container on bridge.
func Mapping(backend string, spec netfilter.PortMapSpec, m netfilter.PortMapping, bridge string) MappingState {
	f := spec.Family()
	var s MappingState
	if read := byBackend[backend]; read != nil {
		s = read(f, spec, m)
	}
	// The FORWARD accepts are iptables rules whichever backend added them.
	if filter := countedSnapshot(f, "filter"); filter != nil {
		for _, ch := range []string{ipt.ChainForward, ipt.ChainFilter, ipt.ChainIsolate} {
			s.Forward = append(s.Forward, filter.Counted(ch, filter.Matching(ch, ipt.ForwardTag(bridge)))...)
		}
	}
	// The iptables backend's direct-routing drop, before DNAT.
	if mangle := countedSnapshot(f, "mangle"); mangle != nil {
		for _, ch := range []string{ipt.ChainFilter, ipt.ChainIsolate, ipt.ChainGuard} {
			s.Forward = append(s.Forward, mangle.Counted(ch, mangle.Matching(ch, ipt.ForwardTag(bridge)))...)
		}
	}
	return s
}

func describeNFT(f netfilter.Family, spec netfilter.PortMapSpec, m netfilter.PortMapping) MappingState {
	fam := f.NFTName()
	list := func(kind, name, needle string) []string {
		out, _ := exec.Command("nft", "list", kind, fam, nft.Table, name).Output()
		var lines []string
		for _, l := range strings.Split(string(out), "\n") {
			l = strings.TrimSpace(l)
			if strings.Contains(l, "comment \"") { // a set element: drop nft's braces and commas
				l = strings.TrimSpace(strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(l, "elements = {"), ","), "}"))
			}
			if l != "" && !strings.HasPrefix(l, "type ") && strings.Contains(l, needle) {
				lines = append(lines, fmt.Sprintf("table %s %s, %s %s: %s", fam, nft.Table, kind, name, l))
			}
		}
		return lines
	}
	tag := spec.Owner.Tag()
	var s MappingState
	set := nft.SetHostPorts
	if m.HostIP != nil && !m.HostIP.IsUnspecified() {
		set = nft.SetHostPortsBound
	}
	elems := slices.DeleteFunc(list("map", set, m.Protocol+" . "+strconv.Itoa(m.HostPort)+" "),
		func(l string) bool { return !strings.Contains(l, tag) })
	if len(elems) > 0 {
		s.DNAT = append(elems, list("chain", nft.ChainHostPorts, "map @"+set)...)
	}
	for _, ch := range []string{nft.ChainGuardRules, nft.ChainGuardProtected, nft.ChainForwardRules} {
		s.Forward = append(s.Forward, list("chain", ch, " drop")...)
	}
	for _, name := range []string{nft.SetGuardProtect, nft.SetFwdMembers, nft.SetFwdIsolate, nft.SetFwdNoICC} {
		s.Forward = append(s.Forward, list("set", name, tag)...)
	}
	for _, name := range []string{nft.SetMasqIPs, nft.SetMasqLocal, nft.SetMasqAll} {
		s.Masq = append(s.Masq, list("set", name, tag)...)
	}
	s.Masq = append(s.Masq, list("chain", nft.ChainPostrouting, "masquerade")...)
	return s
}

func describeIPTables(f netfilter.Family, spec netfilter.PortMapSpec, m netfilter.PortMapping) MappingState {
	var s MappingState
	nat := countedSnapshot(f, "nat")
	if nat == nil {
		return s
	}
	o, proto, port := spec.Owner, "-p "+m.Protocol+" ", strconv.Itoa(m.HostPort)
	dn := ipt.DNATChain(o)
	for _, r := range nat.Matching(ipt.ChainHostPorts, o.Marker(), proto) {
		if slices.Contains(strings.Split(ruleArg(r, "--dports"), ","), port) {
			s.DNAT = append(s.DNAT, nat.Counted(ipt.ChainHostPorts, []string{r})...)
		}
	}
	if len(s.DNAT) > 0 {
		s.DNAT = append(s.DNAT, nat.Counted(dn, nat.Matching(dn, proto, "--dport "+port+" ", "-j DNAT"))...)
	}
	s.Masq = append(nat.Counted(dn, nat.Matching(dn, proto, "--dport "+port+" ", "-j MARK")),
		nat.Counted(ipt.ChainMasq, nat.Owned(ipt.ChainMasq, o))...)
	// The network's masquerade: the rules whose source holds the container.
	var network []string
	for _, r := range nat.Matching(ipt.ChainMasq, "-s ") {
		if _, src, err := net.ParseCIDR(ruleArg(r, "-s")); err == nil && spec.ContainerIP != nil && src.Contains(spec.ContainerIP) && !strings.Contains(r, o.Marker()) {
			network = append(network, r)
		}
	}
	s.Masq = append(s.Masq, nat.Counted(ipt.ChainMasq, network)...)
	s.Masq = append(s.Masq, nat.Counted(ipt.ChainPostrouting, nat.Matching(ipt.ChainPostrouting, "-j MASQUERADE"))...)
	return s
}

// countedSnapshot is `iptables-save -c -t table` of the iptables that
// iptables-save resolves to, or nil when there is none.
func countedSnapshot(f netfilter.Family, table string) *ipt.Snapshot {
	b, err := ipt.New(f, netfilter.Options{})
	if err != nil {
		return nil
	}
	snap, err := b.CountedSnapshot(table)
	if err != nil {
		return nil
	}
	return snap
}

// ruleArg is the word after flag in an iptables rule.
func ruleArg(rule, flag string) string {
	f := strings.Fields(rule)
	if i := slices.Index(f, flag); i >= 0 && i+1 < len(f) {
		return f[i+1]
	}
	return ""
}
