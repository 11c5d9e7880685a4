// Package netfilter holds the packet-filter backends shared by bridge
// (masquerade) and portmap (host-port DNAT). A Backend serves one address
// family; every operation is idempotent and applies as one transaction.
package netfilter

import (
	"fmt"
	"net"
	"strings"
)

// Family is an address family.
type Family int

const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string { return fmt.Sprintf("IPv%d", int(f)) }

// FamilyOf returns the family of ip.
func FamilyOf(ip net.IP) Family {
	if ip.To4() != nil {
		return IPv4
	}
	return IPv6
}

// PortMapping is one published port.
type PortMapping struct {
	HostIP        net.IP // nil or unspecified: every local address
	HostPort      int
	ContainerPort int
	Protocol      string // tcp, udp or sctp
}

func (m PortMapping) String() string {
	host := "0.0.0.0"
	if m.HostIP != nil {
		host = m.HostIP.String()
	}
	return fmt.Sprintf("%s:%d/%s -> %d", host, m.HostPort, m.Protocol, m.ContainerPort)
}

// HostIPFor returns the host address a mapping binds in family f, whether the
// mapping applies to f at all, and "" for every local address.
func HostIPFor(m PortMapping, f Family) (string, bool) {
	if m.HostIP == nil || m.HostIP.IsUnspecified() {
		return "", true
	}
	if FamilyOf(m.HostIP) != f {
		return "", false
	}
	return m.HostIP.String(), true
}

// PortMapSpec is everything portmap installs for one attachment and family.
type PortMapSpec struct {
	Owner        Owner
	ContainerIP  net.IP
	ContainerNet *net.IPNet // the container's subnet: senders in it are hairpin traffic
	Mappings     []PortMapping
	SNAT         bool     // masquerade hairpin and localhost traffic
	MasqAll      bool     // masquerade every connection to the published ports
	MarkBit      int      // bit of the packet mark that asks for masquerade
	ExternalMark string   // chain that sets the masquerade mark (e.g. KUBE-MARK-MASQ)
	Conditions   []string // extra match tokens on the entry rule (conditionsV4/V6)
	HairpinIf    string   // host interface towards the container (its bridge)
}

// MasqSpec is the outbound masquerade for one attachment.
type MasqSpec struct {
	Owner  Owner
	IP     net.IP // the container's address
	Bridge string // traffic leaving through this interface is not masqueraded
	// Except are destinations not masqueraded (a cluster's pod network),
	// of IP's family, none inside another.
	Except []*net.IPNet `json:",omitempty"`
}

// ForwardSpec is the filter half of one attachment: what may be forwarded
// to and from one container address on its bridge.
type ForwardSpec struct {
	Owner   Owner
	IP      net.IP // the container's address
	Bridge  string
	Protect bool // drop what reaches the address from outside the bridge, unless DNATed to a published port
	Isolate bool // drop what comes from another isolated network, unless DNATed
	NoICC   bool // drop what comes from another container of the same bridge, unless DNATed
	// Mode is the bridge's gateway mode that set Protect, and ModeWhy why
	// it applies (a Kubernetes pod, the config, Docker's default): what
	// dnetctl shows and CHECK compares. The backends read neither.
	Mode    string `json:",omitempty"`
	ModeWhy string `json:",omitempty"`
}

// Backend installs and removes rules for one address family.
type Backend interface {
	Name() string
	Family() Family

	// Del* remove exactly what Add* installed for spec.Owner. The rest of
	// spec is what ADD recorded; with only Owner set they find the owner's
	// rules by its tag, which is slower but needs no record.
	AddPortMappings(spec PortMapSpec) error
	DelPortMappings(spec PortMapSpec) error
	CheckPortMappings(spec PortMapSpec) error

	AddMasquerade(spec MasqSpec) error
	DelMasquerade(spec MasqSpec) error
	CheckMasquerade(spec MasqSpec) error

	AddForward(spec ForwardSpec) error
	DelForward(spec ForwardSpec) error
	CheckForward(spec ForwardSpec) error
}

// Backend names.
const (
	NameIPTables = "iptables"
	NameNFTables = "nftables"
)

// Options are what the backends need from the host besides the kernel.
type Options struct {
	// LockPath is the file that serialises the iptables backend's table
	// edits across plugin processes; DefaultLockPath when empty.
	LockPath string
}

// DefaultLockPath is the lock every plugin process on a host shares.
// Without it two parallel ADDs could both see a base chain missing and the
// second declaration would flush the first one's rules.
const DefaultLockPath = "/run/dockernet/netfilter.lock"

// Host is the machine's netfilter as the plugins use it: it makes each
// backend with opts and knows which backends the kernel offers.
type Host struct{ Opts Options }

// New returns the backend called name for family f.
func (h Host) New(name string, f Family) (Backend, error) { return New(name, f, h.Opts) }

// Available lists the backends a DEL without a record must search.
func (Host) Available() []string {
	out := []string{NameIPTables}
	if NFTablesAvailable() {
		out = append(out, NameNFTables)
	}
	return out
}

// Resolve turns a configured backend name ("" for automatic) into the one
// to use: nftables when the kernel has it and nothing iptables-only is
// configured, otherwise iptables.
func Resolve(name string, needsIPTables bool) string {
	switch strings.ToLower(name) {
	case NameIPTables:
		return NameIPTables
	case NameNFTables:
		return NameNFTables
	}
	if !needsIPTables && NFTablesAvailable() {
		return NameNFTables
	}
	return NameIPTables
}

// New returns the backend called name for family f.
func New(name string, f Family, opts Options) (Backend, error) {
	switch strings.ToLower(name) {
	case NameIPTables:
		return newIPTables(f, opts)
	case NameNFTables:
		return newNFTables(f, opts)
	case "":
		return New(Resolve("", false), f, opts)
	}
	return nil, fmt.Errorf("unknown netfilter backend %q: use \"iptables\" or \"nftables\"", name)
}

// ValidateBackendName checks a configured backend name without touching the system.
func ValidateBackendName(name string) error {
	switch strings.ToLower(name) {
	case "", NameIPTables, NameNFTables:
		return nil
	}
	return fmt.Errorf("unknown netfilter backend %q: use \"iptables\" or \"nftables\"", name)
}

// BothFamilies is what a DEL without prevResult must look at.
var BothFamilies = []Family{IPv4, IPv6}

// Family of a spec: that of the container address it is for.
func (s PortMapSpec) Family() Family { return FamilyOf(s.ContainerIP) }

// Family of a spec: that of the container address it is for.
func (s MasqSpec) Family() Family { return FamilyOf(s.IP) }

// Family of a spec: that of the container address it is for.
func (s ForwardSpec) Family() Family { return FamilyOf(s.IP) }
