package attachment

import "github.com/dockernet/cni-plugins/plugins/pkg/netfilter"

// A veth pair is made in two steps (created, then put on the bridge), so
// a crash in between leaves a host veth nothing on the bridge points to.
// The bridge writes its link record before the pair exists, intent first:
// GC finds such a veth by it, the bridge's forwarding release counts the
// attachments by it, and the node agent (dnetctl watch) watches its veth.

// LinkKind is the store folder of the link records.
const LinkKind = "link"

// Link is a link record: whose veth, under which name.
type Link struct {
	Owner    netfilter.Owner
	HostVeth string
}

// Intact reports whether the record belongs under tag and names the veth
// its owner's would be.
func (l Link) Intact(tag string) bool {
	return l.Owner.Tag() == tag && l.HostVeth == l.Owner.HostVeth()
}
