package netfilter

import (
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// MappingState is the kernel state that carries one published mapping, as
// nft and iptables-save print it, counters included: what dnetctl explain
// shows at each hop. It is read with the tools an operator would use, so
// the lines are theirs to recognise.
type MappingState struct {
	DNAT    []string // what DNATs the mapping; empty when nothing does
	Forward []string // the forward drops and the FORWARD accepts for the bridge
	Masq    []string // the masquerade of replies, hairpin and outbound traffic
}

// DescribeMapping reads the state of m, one of spec's mappings, installed
// by backend (the record's) for a container on bridge.
func DescribeMapping(backend string, spec PortMapSpec, m PortMapping, bridge string) MappingState {
	f := spec.Family()
	var s MappingState
	if backend == NameNFTables {
		s = describeNFT(f, spec, m)
	} else {
		s = describeIPTables(f, spec, m)
	}
	// The FORWARD accepts are iptables rules whichever backend added them.
	if filter := countedSnapshot(f, "filter"); filter != nil {
		for _, ch := range []string{chainForward, chainFilter, chainIsolate} {
			s.Forward = append(s.Forward, filter.counted(ch, filter.matching(ch, forwardTag(bridge)))...)
		}
	}
	return s
}

func describeNFT(f Family, spec PortMapSpec, m PortMapping) MappingState {
	fam := "ip"
	if f == IPv6 {
		fam = "ip6"
	}
	list := func(kind, name, needle string) []string {
		out, _ := exec.Command("nft", "list", kind, fam, nftTable, name).Output()
		var lines []string
		for _, l := range strings.Split(string(out), "\n") {
			l = strings.TrimSpace(l)
			if strings.Contains(l, "comment \"") { // a set element: drop nft's braces and commas
				l = strings.TrimSpace(strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(l, "elements = {"), ","), "}"))
			}
			if l != "" && !strings.HasPrefix(l, "type ") && strings.Contains(l, needle) {
				lines = append(lines, fmt.Sprintf("table %s %s, %s %s: %s", fam, nftTable, kind, name, l))
			}
		}
		return lines
	}
	tag := spec.Owner.Tag()
	var s MappingState
	set := setHostPorts
	if m.HostIP != nil && !m.HostIP.IsUnspecified() {
		set = setHostPortsBound
	}
	elems := slices.DeleteFunc(list("map", set, m.Protocol+" . "+strconv.Itoa(m.HostPort)+" "),
		func(l string) bool { return !strings.Contains(l, tag) })
	if len(elems) > 0 {
		s.DNAT = append(elems, list("chain", chainHP, "map @"+set)...)
	}
	s.Forward = list("chain", chainFwd, " drop")
	for _, name := range []string{setFwdMembers, setFwdProtect, setFwdIsolate, setFwdNoICC} {
		s.Forward = append(s.Forward, list("set", name, tag)...)
	}
	for _, name := range []string{setMasqIPs, setMasqLocal, setMasqAll} {
		s.Masq = append(s.Masq, list("set", name, tag)...)
	}
	s.Masq = append(s.Masq, list("chain", chainPost, "masquerade")...)
	return s
}

func describeIPTables(f Family, spec PortMapSpec, m PortMapping) MappingState {
	var s MappingState
	nat := countedSnapshot(f, "nat")
	if nat == nil {
		return s
	}
	o, proto, port := spec.Owner, "-p "+m.Protocol+" ", strconv.Itoa(m.HostPort)
	dn := dnatChain(o)
	for _, r := range nat.matching(chainHostPorts, tagPrefix+o.Tag()+" ", proto) {
		if slices.Contains(strings.Split(ruleArg(r, "--dports"), ","), port) {
			s.DNAT = append(s.DNAT, nat.counted(chainHostPorts, []string{r})...)
		}
	}
	if len(s.DNAT) > 0 {
		s.DNAT = append(s.DNAT, nat.counted(dn, nat.matching(dn, proto, "--dport "+port+" ", "-j DNAT"))...)
	}
	s.Masq = append(nat.counted(dn, nat.matching(dn, proto, "--dport "+port+" ", "-j MARK")),
		nat.counted(chainMasq, nat.owned(chainMasq, o))...)
	s.Masq = append(s.Masq, nat.counted(chainPostrouting, nat.matching(chainPostrouting, "-j MASQUERADE"))...)
	return s
}

// countedSnapshot is `iptables-save -c -t table` of the iptables that
// iptables-save resolves to, or nil when there is none.
func countedSnapshot(f Family, table string) *tableSnapshot {
	b, err := newIPTables(f, Options{})
	if err != nil {
		return nil
	}
	out, err := exec.Command(b.save, "-c", "-t", table).Output()
	if err != nil {
		return nil
	}
	return parseSnapshot(string(out), table)
}

// ruleArg is the word after flag in an iptables rule.
func ruleArg(rule, flag string) string {
	f := strings.Fields(rule)
	if i := slices.Index(f, flag); i >= 0 && i+1 < len(f) {
		return f[i+1]
	}
	return ""
}
