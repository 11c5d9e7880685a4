package netfilter

// Records kept in the state store (plugins/pkg/state), one per attachment.
// They name the backend that installed the rules, so a DEL cleans up with
// the same one even if the configuration or the host changed since.

// State kinds.
const (
	KindPortMap = "portmap"
	KindMasq    = "masq"
)

// PortMapRecord is what portmap installed for one attachment.
type PortMapRecord struct {
	Backend string
	Specs   []PortMapSpec
}

// MasqRecord is what bridge installed for one attachment's masquerade.
type MasqRecord struct {
	Backend string
	Specs   []MasqSpec
}

// Family of a recorded spec.
func (s PortMapSpec) Family() Family { return FamilyOf(s.ContainerIP) }

// Family of a recorded spec.
func (s MasqSpec) Family() Family { return FamilyOf(s.IP) }

// AvailableBackends lists the backends a DEL without a record must search.
func AvailableBackends() []string {
	out := []string{NameIPTables}
	if NFTablesAvailable() {
		out = append(out, NameNFTables)
	}
	return out
}
