package attachment

import (
	"encoding/json"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// A veth pair is made in two steps (created, then put on the bridge), so
// a crash in between leaves a host veth nothing on the bridge points to.
// The bridge writes its link record before the pair exists, intent first:
// GC finds such a veth by it, the bridge's forwarding release counts the
// attachments by it, and the node agent (dnetctl watch) watches its veth.

// LinkKind is the store folder of the link records.
const LinkKind = "link"

// LinkVersion is the version of the link record's format; records
// without one (version 0) have no IPAM.
const LinkVersion = 1

// Link is a link record: whose veth, under which name, and the IPAM
// plugin that reserved its addresses, with the network's config, so that
// a collection without the runtime's config (dnetctl gc, the node agent)
// can release them.
type Link struct {
	Version  int `json:",omitempty"`
	Owner    netfilter.Owner
	HostVeth string
	IPAM     *LinkIPAM `json:",omitempty"`
}

// LinkIPAM is how to release an attachment's addresses: the IPAM
// plugin's DEL with the network's config.
type LinkIPAM struct {
	Type   string
	Config json.RawMessage
}

// Intact reports whether the record belongs under tag and names the veth
// its owner's would be.
func (l Link) Intact(tag string) bool {
	return l.Owner.Tag() == tag && l.HostVeth == l.Owner.HostVeth()
}

// LinkNetwork reads the network a link record's content names, "" for
// none (a partial write): how GC tells a crashed ADD's temporary record.
func LinkNetwork(data []byte) string {
	var l Link
	if json.Unmarshal(data, &l) != nil {
		return ""
	}
	return l.Owner.Network
}
