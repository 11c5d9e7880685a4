package nft

import "github.com/dockernet/cni-plugins/plugins/pkg/netfilter"

// The source allowlists of published ports (allowedSources,
// sourceRanges) live in this table whichever backend publishes the
// ports: the nftables backend adds them with its port elements, and these
// are the netfilter.SourceFilter the iptables backend is given.

// AddSources queues the allowlists of spec's mappings alone: the
// netfilter.SourceFilter the iptables backend uses.
func (b *Backend) AddSources(tx *netfilter.Txn, spec netfilter.PortMapSpec) {
	l := newLayout(b.family)
	b.part(tx).queue(op{what: "source allowlist of container " + spec.Owner.ContainerID, f: b.family, add: l.sourceElems(spec)})
}

// DelSources queues the removal of spec's allowlists.
func (b *Backend) DelSources(tx *netfilter.Txn, spec netfilter.PortMapSpec) {
	l := newLayout(b.family)
	b.queueDel(tx, "source allowlist", spec.Owner, spec.ContainerIP != nil, func() []elem { return l.sourceElems(spec) },
		l.srcLimited, l.srcAllowed)
}

// CheckSources verifies spec's allowlists.
func (b *Backend) CheckSources(spec netfilter.PortMapSpec) error {
	l := newLayout(b.family)
	return b.check(l, l.sourceElems(spec), "source allowlist")
}
