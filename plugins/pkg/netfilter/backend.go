// Package netfilter is what the plugins ask of the host's packet filter:
// the specs of what an attachment publishes, masquerades and forwards, the
// Backend interface with one implementation per folder (nft, ipt), and the
// Txn that every change is built on and committed once. See README.md for
// the layout and the security model.
package netfilter

import (
	"fmt"
	"strings"
)

// Backend installs and removes one address family's rules. Changes are
// queued on a Txn and land when it is committed; checks read the kernel
// at once. Every Del* succeeds when there is nothing to delete. Every
// Add* changes nothing when its state is there, except the iptables
// backend's AddMasquerade, whose fast path appends without looking
// (attachment.Reinstall removes first); see the netfilter README.
type Backend interface {
	Name() string
	Family() Family

	// Del* remove exactly what Add* installed for spec.Owner. The rest of
	// spec is what ADD recorded; with only Owner set they find the owner's
	// rules by its tag, which is slower but needs no record.
	AddPortMappings(tx *Txn, spec PortMapSpec)
	DelPortMappings(tx *Txn, spec PortMapSpec)
	CheckPortMappings(spec PortMapSpec) error

	AddMasquerade(tx *Txn, spec MasqSpec)
	DelMasquerade(tx *Txn, spec MasqSpec)
	CheckMasquerade(spec MasqSpec) error

	AddForward(tx *Txn, spec ForwardSpec)
	DelForward(tx *Txn, spec ForwardSpec)
	CheckForward(spec ForwardSpec) error
	// DelForwardGuard removes what ForwardSpec.Guard installed, once the
	// bridge gives forwarding back as it found it.
	DelForwardGuard(tx *Txn)
	// DelNetwork removes what the network on bridge holds beyond its
	// attachments (its accepts, drops, guard exceptions, hairpin
	// interface), once it has none left: everything named by the bridge.
	// Nothing there is not an error.
	DelNetwork(tx *Txn, bridge string)
}

// BaseKinds are the kinds of state whose shared base a probe looks at.
type BaseKinds struct {
	Ports, Masquerade, Forward bool
	// Sources: some port has a source allowlist (with iptables, they
	// live in an nftables table the probe must look at too).
	Sources bool
	// Networks are one forwarding spec of each network (bridge and
	// settings) the records hold: their per-network rules are probed too.
	Networks []ForwardSpec
	// Thorough asks for the slower, complete look even where a fast one
	// found the jumps (after a change, not at an idle poll).
	Thorough bool
}

// BaseProber is a cheap test, whatever the number of attachments, that
// the state every attachment of kinds relies on is in place: a table,
// base chains, the jumps to them. A flush or a firewall reload removes
// those first, so it is what the node agent probes between restores.
type BaseProber interface {
	ProbeBase(kinds BaseKinds) error
}

// SpecProber checks, in a few dumps whatever their number, that each of
// specs' own parts is in place (elements, or an owner's rules): what a
// flush of one set or chain removes without touching the base. Each
// backend checks what is its own; nil when all is there.
type SpecProber interface {
	ProbeSpecs(ports []PortMapSpec, masq []MasqSpec, fwd []ForwardSpec) error
}

// Backend names.
const (
	NameIPTables = "iptables"
	NameNFTables = "nftables"
)

// Features are the portmap keys beyond the common ones that a backend
// implements; config validation asks them, so no key is silently ignored.
type Features struct {
	Conditions   bool // conditionsV4 / conditionsV6: extra match tokens
	ExternalMark bool // externalSetMarkChain: another chain sets the masquerade mark
	AnyMarkBit   bool // a markMasqBit other than DefaultMarkBit
}

// Lacks names the keys of want that f does not implement.
func (f Features) Lacks(want Features) []string {
	var out []string
	if want.Conditions && !f.Conditions {
		out = append(out, "conditionsV4/conditionsV6")
	}
	if want.ExternalMark && !f.ExternalMark {
		out = append(out, "externalSetMarkChain")
	}
	if want.AnyMarkBit && !f.AnyMarkBit {
		out = append(out, fmt.Sprintf("a markMasqBit other than %d", DefaultMarkBit))
	}
	return out
}

// Options are what the backends need from the host besides the kernel.
type Options struct {
	// LockPath is the file that serialises iptables edits across plugin
	// processes; DefaultLockPath when empty.
	LockPath string
}

// Lock is the lock file to use.
func (o Options) Lock() string {
	if o.LockPath == "" {
		return DefaultLockPath
	}
	return o.LockPath
}

// DefaultLockPath is the lock every plugin process on a host shares.
// Without it two parallel ADDs could both see a base chain missing and the
// second declaration would flush the first one's rules.
const DefaultLockPath = "/run/dockernet/netfilter.lock"

// DefaultMarkBit is the reference portmap's default masquerade mark bit;
// the nftables backend marks hairpin connections with it too.
const DefaultMarkBit = 13

// ValidateBackendName checks a configured backend name without touching the system.
func ValidateBackendName(name string) error {
	switch strings.ToLower(name) {
	case "", NameIPTables, NameNFTables:
		return nil
	}
	return fmt.Errorf("unknown netfilter backend %q: use \"iptables\" or \"nftables\"", name)
}

// ForwardAccepts is the seam between backends: it adds a network's accept
// rules to packet filters other than the backend's own (the iptables
// filter tables), so that their FORWARD policy or rules cannot drop what
// the backend lets through. The nftables backend is given one
// (ipt.Accepts); host.New wires them.
type ForwardAccepts interface {
	Ensure(f Family, bridge string) error
	Remove(f Family, bridge string) error
	Check(f Family, bridge string) error
	Probe(f Family) error // cheap: what a flush removes first
}

// SourceFilter is the seam for source allowlists: only an nftables set
// checks a source against a thousand networks in one lookup, so the
// iptables backend queues its mappings' allowlists in the nftables table
// (nft.Backend implements it; host.New wires it where the kernel has
// nf_tables).
type SourceFilter interface {
	AddSources(tx *Txn, spec PortMapSpec)
	DelSources(tx *Txn, spec PortMapSpec)
	CheckSources(spec PortMapSpec) error
}
