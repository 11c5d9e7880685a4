package ipt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/dockernet/cni-plugins/plugins/pkg/filelock"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/timeline"
)

// Backend is the iptables backend for one family. An ADD or DEL is
// usually one `iptables-restore --noflush`, whatever the number of
// mappings; see editTable for when it also needs an `iptables-save`.
type Backend struct {
	family    netfilter.Family
	save      string
	restore   string
	lockPath  string
	nftBacked bool // iptables-nft: the base can be probed over netlink
	// Sources holds the mappings' source allowlists (the nftables
	// table's sets); nil where the kernel has no nf_tables, and then a
	// mapping with an allowlist is refused.
	Sources netfilter.SourceFilter
	// printTo, while a transaction is printed: where each change goes
	// instead of the kernel.
	printTo io.Writer
}

// Features: every portmap key of the reference plugin.
var Features = netfilter.Features{Conditions: true, ExternalMark: true, AnyMarkBit: true}

// New returns the backend for family f, using the iptables that
// iptables-restore resolves to.
func New(f netfilter.Family, opts netfilter.Options) (*Backend, error) {
	// Only path lookups here: this runs on every ADD and DEL, and a
	// version probe would cost a process start each time (see Probe).
	b := &Backend{family: f, lockPath: opts.Lock()}
	var err error
	if b.save, err = exec.LookPath(f.IPTables() + "-save"); err != nil {
		return nil, fmt.Errorf("%s-save not found: %w (install the iptables package)", f.IPTables(), err)
	}
	if b.restore, err = exec.LookPath(f.IPTables() + "-restore"); err != nil {
		return nil, fmt.Errorf("%s-restore not found: %w (install the iptables package)", f.IPTables(), err)
	}
	b.nftBacked = nftBacked(b.restore)
	return b, nil
}

// ProbeNAT checks that iptables runs and can read the nat table (one
// iptables-save of it): a health check for STATUS, too slow for every ADD.
func (b *Backend) ProbeNAT() error {
	if _, err := b.Snapshot("nat"); err != nil {
		return fmt.Errorf("iptables cannot read the nat table: %w", err)
	}
	return nil
}

func (b *Backend) Name() string             { return netfilter.NameIPTables }
func (b *Backend) Family() netfilter.Family { return b.family }

// NFTBacked reports whether this iptables stores its rules in nf_tables.
func (b *Backend) NFTBacked() bool { return b.nftBacked }

// part is the iptables share of a netfilter.Txn: its steps in order,
// each one iptables-restore transaction under the lock.
type part struct{ steps []step }

// step is one queued change, built when it runs, by the backend b.
type step struct {
	b   *Backend
	run func() error
}

type partKey struct{}

func (b *Backend) queue(tx *netfilter.Txn, run func() error) {
	p := tx.Part(partKey{}, func() netfilter.Part { return &part{} }).(*part)
	p.steps = append(p.steps, step{b, run})
}

// Commit applies every step; a step that fails does not stop the rest.
func (p *part) Commit() error {
	var errs []error
	for _, s := range p.steps {
		errs = append(errs, s.run())
	}
	return errors.Join(errs...)
}

// Print runs every step with its backend printing, instead of applying,
// each iptables-restore input that would change something: the tables
// are read as Commit reads them, and each input is checked with
// iptables-restore --test, so a fast path the kernel would refuse shows
// as refused, followed by what replaces it.
func (p *part) Print(w io.Writer) error {
	var errs []error
	for _, s := range p.steps {
		s.b.printTo = w
		errs = append(errs, s.run())
		s.b.printTo = nil
	}
	return errors.Join(errs...)
}

// Snapshot is `iptables-save -t table`.
func (b *Backend) Snapshot(table string) (*Snapshot, error) { return b.dump(table, "-t", table) }

// CountedSnapshot is `iptables-save -c -t table`: the rules with their counters.
func (b *Backend) CountedSnapshot(table string) (*Snapshot, error) {
	return b.dump(table, "-c", "-t", table)
}

func (b *Backend) dump(table string, args ...string) (*Snapshot, error) {
	var out, stderr bytes.Buffer
	cmd := exec.Command(b.save, args...)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %v: %s", b.save, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return parseSnapshot(out.String(), table), nil
}

// apply runs txns, one table section each, in one iptables-restore.
func (b *Backend) apply(txns ...*ruleTxn) error {
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
	if b.printTo != nil && changes(txns) {
		return b.print(input)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(b.restore, "--noflush", "--wait")
	cmd.Stdin, cmd.Stderr = strings.NewReader(input), &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v: %s\n--- input ---\n%s", b.restore, err, strings.TrimSpace(stderr.String()), input)
	}
	return nil
}

// changes reports whether txns hold a line other than a -C check.
func changes(txns []*ruleTxn) bool {
	for _, t := range txns {
		if len(t.declare) > 0 || changes(t.others) {
			return true
		}
		for _, l := range t.lines {
			if !strings.HasPrefix(l, "-C ") {
				return true
			}
		}
	}
	return false
}

// print writes input as the transaction it is, tested by the kernel's
// tables with iptables-restore --test, which commits nothing.
func (b *Backend) print(input string) error {
	fmt.Fprintf(b.printTo, "%s %s --noflush:\n%s", b.family, filepath.Base(b.restore), input)
	var stderr bytes.Buffer
	cmd := exec.Command(b.restore, "--noflush", "--test", "--wait")
	cmd.Stdin, cmd.Stderr = strings.NewReader(input), &stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(b.printTo, "(refused: %s)\n", strings.TrimSpace(stderr.String()))
		return fmt.Errorf("%s: %v: %s", b.restore, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// editTable applies one transaction to table under the lock. It first
// tries fast, built without reading the table: its -C, -N and -D lines
// make iptables-restore refuse it, changing nothing, unless the table is
// as the fast path assumes. Otherwise (first ADD on a host, a re-ADD, a
// lost record, a flushed table) it applies what slow builds from a fresh
// snapshot. iptables-save prints every rule, so it is the one step that
// grows with the number of containers, and the fast path exists to avoid it.
func (b *Backend) editTable(table string, fast func(txn *ruleTxn), slow func(txn *ruleTxn, snap *Snapshot) error) error {
	lk, err := filelock.Acquire(b.lockPath)
	if err != nil {
		return err
	}
	defer lk.Release()
	if fast != nil {
		txn := &ruleTxn{table: table}
		fast(txn)
		if b.apply(txn) == nil {
			timeline.Mark("ipt-" + table)
			return nil
		}
		timeline.Mark("ipt-" + table + "-fast-refused")
	}
	snap, err := b.Snapshot(table)
	if err != nil {
		return err
	}
	timeline.Mark("ipt-" + table + "-snapshot")
	txn := &ruleTxn{table: table}
	if err := slow(txn, snap); err != nil {
		return err
	}
	return b.apply(txn)
}

// dropOwnedPortRules deletes owner's entry rules from DNET-HOSTPORTS; its
// DNAT chain is flushed or removed by the caller.
func dropOwnedPortRules(txn *ruleTxn, snap *Snapshot, o netfilter.Owner) {
	for _, r := range snap.Owned(ChainHostPorts, o) {
		txn.deleteSaved(ChainHostPorts, r)
	}
}

func (b *Backend) AddPortMappings(tx *netfilter.Txn, spec netfilter.PortMapSpec) {
	if spec.Routed {
		b.queue(tx, func() error { return b.addRoutedPorts(spec) })
		return
	}
	if limitsSources(spec) {
		if b.Sources == nil {
			tx.Fail(fmt.Errorf("%s: a source allowlist (allowedSources, sourceRanges) needs nf_tables, which this kernel does not answer", b.family))
			return
		}
		// Queued first: the nftables share commits before iptables'
		// steps, so the allowlist holds before the DNAT exists.
		b.Sources.AddSources(tx, spec)
	}
	b.queue(tx, func() error { return b.addPortMappings(spec) })
}

// ensureLoopbackDrop puts the raw loopback drop in place, whichever
// backend the bridge uses: a port published on 127.0.0.1 must not be
// reachable from a neighbour. The fast path checks it with the rest of
// portmap's base; this runs when that path could not be taken.
func (b *Backend) ensureLoopbackDrop() error {
	lk, err := filelock.Acquire(b.lockPath)
	if err != nil {
		return err
	}
	defer lk.Release()
	r := loopbackDrop(b.family)
	if b.checkAll([]filterRule{r}) == nil {
		return nil
	}
	txn := &ruleTxn{table: r.table}
	txn.insert(r.chain, r.args...)
	return b.apply(txn)
}

// addPortMappings is one iptables-restore on the fast path: the nat
// rules, and -C lines for the base, raw loopback drop included. When the
// table is not as that path assumes, the slow path rebuilds nat from a
// snapshot and then sees to the raw drop.
func (b *Backend) addPortMappings(spec netfilter.PortMapSpec) error {
	fast := func(txn *ruleTxn) {
		b.requireBase(txn, portmapBase(spec))
		portmapAddFast(txn, spec, b.family)
	}
	slowRan := false
	err := b.editTable("nat", fast, func(txn *ruleTxn, snap *Snapshot) error {
		slowRan = true
		ensureBase(txn, snap, portmapBase(spec))
		// Re-ADD replaces: old entry rules go, the DNAT chain is re-declared (flushed).
		dropOwnedPortRules(txn, snap, spec.Owner)
		portmapRules(txn, spec, b.family)
		return nil
	})
	if err != nil || !slowRan {
		return err
	}
	return b.ensureLoopbackDrop()
}

func (b *Backend) DelPortMappings(tx *netfilter.Txn, spec netfilter.PortMapSpec) {
	if spec.Routed || spec.ContainerIP == nil { // without a record, either may be there
		b.queue(tx, func() error { return b.delRoutedPorts(spec.Owner) })
	}
	if spec.Routed {
		return
	}
	b.queue(tx, func() error { return b.delPortMappings(spec) })
	// Without a record the allowlist is searched for too.
	if b.Sources != nil && (limitsSources(spec) || spec.ContainerIP == nil) {
		b.Sources.DelSources(tx, spec)
	}
}

// limitsSources reports whether a mapping of spec has a source allowlist.
func limitsSources(spec netfilter.PortMapSpec) bool {
	for _, m := range spec.Mappings {
		if len(m.Sources) > 0 {
			return true
		}
	}
	return false
}

func (b *Backend) delPortMappings(spec netfilter.PortMapSpec) error {
	o := spec.Owner
	var fast func(*ruleTxn)
	if spec.ContainerIP != nil { // else no record: find the owner's rules by tag
		fast = func(txn *ruleTxn) { portmapDelFast(txn, spec, b.family) }
	}
	return b.editTable("nat", fast, func(txn *ruleTxn, snap *Snapshot) error {
		dropOwnedPortRules(txn, snap, o)
		if chain := DNATChain(o); snap.chains[chain] {
			txn.declareChain(chain) // flushes it, so it can be deleted
			txn.deleteChain(chain)
		}
		return nil
	})
}

func (b *Backend) CheckPortMappings(spec netfilter.PortMapSpec) error {
	if spec.Routed {
		return b.checkRoutedPorts(spec)
	}
	snap, err := b.Snapshot("nat")
	if err != nil {
		return err
	}
	if err := checkBase(snap, portmapBase(spec), b.family); err != nil {
		return err
	}
	if r := loopbackDrop(b.family); b.checkAll([]filterRule{r}) != nil {
		return fmt.Errorf("%s: raw rule %q is missing from chain %s", b.family, joinArgs(r.args), r.chain)
	}
	if limitsSources(spec) && b.Sources != nil {
		if err := b.Sources.CheckSources(spec); err != nil {
			return err
		}
	}
	chain := DNATChain(spec.Owner)
	if !snap.chains[chain] {
		return fmt.Errorf("%s: chain %s for container %s is missing", b.family, chain, spec.Owner.ContainerID)
	}
	for _, m := range spec.Mappings {
		if _, ok := netfilter.HostIPFor(m, b.family); !ok {
			continue
		}
		dport := fmt.Sprintf("--dport %d ", m.HostPort)
		to := "--to-destination " + joinHostPort(spec.ContainerIP, m.ContainerPort) + " "
		if !snap.hasRule(chain, "-p "+m.Protocol+" ", dport, to) {
			return fmt.Errorf("%s: DNAT rule for %s is missing from %s", b.family, m, chain)
		}
		if len(snap.Matching(ChainHostPorts, spec.Owner.Marker(), "-p "+m.Protocol+" ")) == 0 {
			return fmt.Errorf("%s: entry rule for %s is missing from %s", b.family, m, ChainHostPorts)
		}
	}
	return b.checkOwnerRules(spec)
}

// checkOwnerRules checks every rule of spec's own (its chain's marks and
// DNATs, its entries), as ADD made them, in one iptables-restore of -C
// lines: a mark rule lost alone would break only hairpin, which the
// lookups above do not see.
func (b *Backend) checkOwnerRules(spec netfilter.PortMapSpec) error {
	chainRules, entries := ownerRules(spec, b.family)
	var rules []filterRule
	for _, args := range chainRules {
		rules = append(rules, filterRule{chain: DNATChain(spec.Owner), args: args, table: "nat"})
	}
	for _, args := range entries {
		rules = append(rules, filterRule{chain: ChainHostPorts, args: args, table: "nat"})
	}
	if len(rules) == 0 || b.checkAll(rules) == nil {
		return nil
	}
	if r, ok := b.firstMissing(rules); ok {
		return fmt.Errorf("%s: nat rule %q is missing from chain %s", b.family, joinArgs(r.args), r.chain)
	}
	return fmt.Errorf("%s: the nat rules of container %s are incomplete", b.family, spec.Owner.ContainerID)
}

func (b *Backend) AddMasquerade(tx *netfilter.Txn, spec netfilter.MasqSpec) {
	b.queue(tx, func() error { return b.addMasquerade(spec) })
}

func (b *Backend) addMasquerade(spec netfilter.MasqSpec) error {
	if spec.Subnet != nil {
		return b.ensureMasqNetwork(spec)
	}
	rules := masqRules(spec, b.family)
	// The fast path cannot see an old rule of this owner; the bridge
	// removes the previous record's rules before a re-ADD.
	fast := func(txn *ruleTxn) {
		b.requireBase(txn, masqBase())
		txn.addAll(ChainMasq, rules)
	}
	return b.editTable("nat", fast, func(txn *ruleTxn, snap *Snapshot) error {
		ensureBase(txn, snap, masqBase())
		for _, r := range snap.Owned(ChainMasq, spec.Owner) {
			txn.deleteSaved(ChainMasq, r)
		}
		txn.addAll(ChainMasq, rules)
		return nil
	})
}

// DelMasquerade removes the container's own rules; the network's go with
// its last attachment (DelNetwork).
func (b *Backend) DelMasquerade(tx *netfilter.Txn, spec netfilter.MasqSpec) {
	if spec.Subnet != nil {
		return
	}
	b.queue(tx, func() error { return b.delMasquerade(spec) })
}

func (b *Backend) delMasquerade(spec netfilter.MasqSpec) error {
	var fast func(*ruleTxn)
	if spec.IP != nil {
		fast = func(txn *ruleTxn) {
			for _, r := range masqRules(spec, b.family) {
				txn.del(ChainMasq, r...)
			}
		}
	}
	return b.editTable("nat", fast, func(txn *ruleTxn, snap *Snapshot) error {
		for _, r := range snap.Owned(ChainMasq, spec.Owner) {
			txn.deleteSaved(ChainMasq, r)
		}
		return nil
	})
}

func (b *Backend) CheckMasquerade(spec netfilter.MasqSpec) error {
	snap, err := b.Snapshot("nat")
	if err != nil {
		return err
	}
	if err := checkBase(snap, masqBase(), b.family); err != nil {
		return err
	}
	if spec.Subnet != nil {
		return checkMasqNetwork(snap, spec, b.family)
	}
	src := "-s " + spec.IP.String() + b.family.HostPrefix() + " "
	if len(snap.Matching(ChainMasq, spec.Owner.Marker(), src, "-j MASQUERADE")) == 0 {
		return fmt.Errorf("%s: masquerade rule for %s (container %s) is missing from %s", b.family, spec.IP, spec.Owner.ContainerID, ChainMasq)
	}
	for _, n := range spec.Except {
		if len(snap.Matching(ChainMasq, spec.Owner.Marker(), src, "-d "+n.String()+" ", "-j RETURN")) == 0 {
			return fmt.Errorf("%s: the rule keeping %s unmasqueraded towards %s (container %s) is missing from %s", b.family, spec.IP, n, spec.Owner.ContainerID, ChainMasq)
		}
	}
	return nil
}
