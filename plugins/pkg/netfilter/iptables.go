package netfilter

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"

	"github.com/coreos/go-iptables/iptables"

	"github.com/dockernet/cni-plugins/plugins/pkg/filelock"
)

// ipTables is the iptables backend. An ADD or DEL is usually one
// `iptables-restore --noflush`, whatever the number of mappings; see edit
// for when it also needs an `iptables-save -t nat`.
type ipTables struct {
	family    Family
	save      string
	restore   string
	lockPath  string
	nftBacked bool // iptables-nft: the base can be probed over netlink
}

func newIPTables(f Family, opts Options) (*ipTables, error) {
	prefix := "iptables"
	if f == IPv6 {
		prefix = "ip6tables"
	}
	// Only path lookups here: this runs on every ADD and DEL, and a
	// version probe would cost a process start each time (see Probe).
	b := &ipTables{family: f, lockPath: opts.LockPath}
	if b.lockPath == "" {
		b.lockPath = DefaultLockPath
	}
	var err error
	if b.save, err = exec.LookPath(prefix + "-save"); err != nil {
		return nil, fmt.Errorf("%s-save not found: %w (install the iptables package)", prefix, err)
	}
	if b.restore, err = exec.LookPath(prefix + "-restore"); err != nil {
		return nil, fmt.Errorf("%s-restore not found: %w (install the iptables package)", prefix, err)
	}
	b.nftBacked = nftBacked(b.restore)
	return b, nil
}

// ProbeIPTables checks through go-iptables that iptables runs and can read
// the nat table: a health check for STATUS, too slow for every ADD.
func ProbeIPTables(f Family) error {
	proto := iptables.ProtocolIPv4
	if f == IPv6 {
		proto = iptables.ProtocolIPv6
	}
	ipt, err := iptables.NewWithProtocol(proto)
	if err != nil {
		return fmt.Errorf("iptables is not usable: %w", err)
	}
	if _, err := ipt.ListChains("nat"); err != nil {
		return fmt.Errorf("iptables cannot read the nat table: %w", err)
	}
	return nil
}

func (b *ipTables) Name() string   { return "iptables" }
func (b *ipTables) Family() Family { return b.family }

func (b *ipTables) snapshot(table string) (*tableSnapshot, error) {
	var out, stderr bytes.Buffer
	cmd := exec.Command(b.save, "-t", table)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s -t %s: %v: %s", b.save, table, err, strings.TrimSpace(stderr.String()))
	}
	return parseSnapshot(out.String(), table), nil
}

// apply runs txns, one table section each, in one iptables-restore.
func (b *ipTables) apply(txns ...*ruleTxn) error {
	var in strings.Builder
	for _, txn := range txns {
		if !txn.empty() {
			in.WriteString(txn.render())
		}
	}
	if in.Len() == 0 {
		return nil
	}
	input := in.String()
	var stderr bytes.Buffer
	cmd := exec.Command(b.restore, "--noflush", "--wait")
	cmd.Stdin, cmd.Stderr = strings.NewReader(input), &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v: %s\n--- input ---\n%s", b.restore, err, strings.TrimSpace(stderr.String()), input)
	}
	return nil
}

// edit applies one transaction under the lock. It first tries fast, built
// without reading the table: its -C, -N and -D lines make iptables-restore
// refuse it, changing nothing, unless the table is as the fast path
// assumes. Otherwise (first ADD on a host, a re-ADD, a lost record, a
// flushed table) it applies what slow builds from a fresh snapshot.
// iptables-save prints every rule, so it is the one step that grows with
// the number of containers, and the fast path exists to avoid it.
func (b *ipTables) edit(fast func(txn *ruleTxn), slow func(txn *ruleTxn, snap *tableSnapshot) error) error {
	return b.editTable("nat", fast, slow)
}

// editTable is edit for any table.
func (b *ipTables) editTable(table string, fast func(txn *ruleTxn), slow func(txn *ruleTxn, snap *tableSnapshot) error) error {
	lk, err := filelock.Acquire(b.lockPath)
	if err != nil {
		return err
	}
	defer lk.Release()
	if fast != nil {
		txn := &ruleTxn{table: table}
		fast(txn)
		if b.apply(txn) == nil {
			return nil
		}
	}
	snap, err := b.snapshot(table)
	if err != nil {
		return err
	}
	txn := &ruleTxn{table: table}
	if err := slow(txn, snap); err != nil {
		return err
	}
	return b.apply(txn)
}

// dropOwnedPortRules deletes owner's entry rules from DNET-HOSTPORTS; its
// DNAT chain is flushed or removed by the caller.
func dropOwnedPortRules(txn *ruleTxn, snap *tableSnapshot, o Owner) {
	for _, r := range snap.owned(chainHostPorts, o) {
		txn.deleteSaved(chainHostPorts, r)
	}
}

func (b *ipTables) AddPortMappings(spec PortMapSpec) error {
	fast := func(txn *ruleTxn) {
		b.requireBase(txn, portmapBase(spec))
		portmapAddFast(txn, spec, b.family)
	}
	return b.edit(fast, func(txn *ruleTxn, snap *tableSnapshot) error {
		ensureBase(txn, snap, portmapBase(spec))
		// Re-ADD replaces: old entry rules go, the DNAT chain is re-declared (flushed).
		dropOwnedPortRules(txn, snap, spec.Owner)
		portmapRules(txn, spec, b.family)
		return nil
	})
}

func (b *ipTables) DelPortMappings(spec PortMapSpec) error {
	o := spec.Owner
	var fast func(*ruleTxn)
	if spec.ContainerIP != nil { // else no record: find the owner's rules by tag
		fast = func(txn *ruleTxn) { portmapDelFast(txn, spec, b.family) }
	}
	return b.edit(fast, func(txn *ruleTxn, snap *tableSnapshot) error {
		dropOwnedPortRules(txn, snap, o)
		if chain := dnatChain(o); snap.chains[chain] {
			txn.declareChain(chain) // flushes it, so it can be deleted
			txn.deleteChain(chain)
		}
		return nil
	})
}

func (b *ipTables) CheckPortMappings(spec PortMapSpec) error {
	snap, err := b.snapshot("nat")
	if err != nil {
		return err
	}
	if err := checkBase(snap, portmapBase(spec), b.family); err != nil {
		return err
	}
	chain := dnatChain(spec.Owner)
	if !snap.chains[chain] {
		return fmt.Errorf("%s: chain %s for container %s is missing", b.family, chain, spec.Owner.ContainerID)
	}
	for _, m := range spec.Mappings {
		if _, ok := HostIPFor(m, b.family); !ok {
			continue
		}
		dport := fmt.Sprintf("--dport %d ", m.HostPort)
		to := "--to-destination " + joinHostPort(spec.ContainerIP, m.ContainerPort) + " "
		if !snap.hasRule(chain, "-p "+m.Protocol+" ", dport, to) {
			return fmt.Errorf("%s: DNAT rule for %s is missing from %s", b.family, m, chain)
		}
		if len(snap.matching(chainHostPorts, tagPrefix+spec.Owner.Tag()+" ", "-p "+m.Protocol+" ")) == 0 {
			return fmt.Errorf("%s: entry rule for %s is missing from %s", b.family, m, chainHostPorts)
		}
	}
	return nil
}

func (b *ipTables) AddMasquerade(spec MasqSpec) error {
	// The fast path cannot see an old rule of this owner; the bridge
	// removes the previous record's rules before a re-ADD.
	fast := func(txn *ruleTxn) {
		b.requireBase(txn, masqBase())
		for _, r := range masqRules(spec, b.family) {
			txn.add(chainMasq, r...)
		}
	}
	return b.edit(fast, func(txn *ruleTxn, snap *tableSnapshot) error {
		ensureBase(txn, snap, masqBase())
		for _, r := range snap.owned(chainMasq, spec.Owner) {
			txn.deleteSaved(chainMasq, r)
		}
		for _, r := range masqRules(spec, b.family) {
			txn.add(chainMasq, r...)
		}
		return nil
	})
}

func (b *ipTables) DelMasquerade(spec MasqSpec) error {
	o := spec.Owner
	var fast func(*ruleTxn)
	if spec.IP != nil {
		fast = func(txn *ruleTxn) {
			for _, r := range masqRules(spec, b.family) {
				txn.del(chainMasq, r...)
			}
		}
	}
	return b.edit(fast, func(txn *ruleTxn, snap *tableSnapshot) error {
		for _, r := range snap.owned(chainMasq, o) {
			txn.deleteSaved(chainMasq, r)
		}
		return nil
	})
}

func (b *ipTables) CheckMasquerade(spec MasqSpec) error {
	snap, err := b.snapshot("nat")
	if err != nil {
		return err
	}
	if err := checkBase(snap, masqBase(), b.family); err != nil {
		return err
	}
	src := "-s " + spec.IP.String() + hostPrefix(b.family) + " "
	if len(snap.matching(chainMasq, tagPrefix+spec.Owner.Tag()+" ", src, "-j MASQUERADE")) == 0 {
		return fmt.Errorf("%s: masquerade rule for %s (container %s) is missing from %s", b.family, spec.IP, spec.Owner.ContainerID, chainMasq)
	}
	for _, n := range spec.Except {
		if len(snap.matching(chainMasq, tagPrefix+spec.Owner.Tag()+" ", src, "-d "+n.String()+" ", "-j RETURN")) == 0 {
			return fmt.Errorf("%s: the rule keeping %s unmasqueraded towards %s (container %s) is missing from %s", b.family, spec.IP, n, spec.Owner.ContainerID, chainMasq)
		}
	}
	return nil
}
