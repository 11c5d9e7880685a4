package bridgeplugin

import (
	"errors"
	"fmt"

	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/state"
)

// recordLink writes the attachment's link record, with what releases its
// addresses (the IPAM plugin and the network's config) when the runtime
// never sends the DEL.
func recordLink(n *NetConf, o netfilter.Owner, config []byte) error {
	rec := attachment.Link{Version: attachment.LinkVersion, Owner: o, HostVeth: o.HostVeth()}
	if n.isLayer3() {
		rec.IPAM = &attachment.LinkIPAM{Type: n.IPAM.Type, Config: config}
	}
	if err := state.New(n.StateDir).Save(attachment.LinkKind, o.Tag(), rec); err != nil {
		return cnierr.IO("bridge: %v", err)
	}
	return nil
}

func forgetLink(n *NetConf, o netfilter.Owner) error {
	if err := state.New(n.StateDir).Remove(attachment.LinkKind, o.Tag()); err != nil {
		return cnierr.IO("bridge: %v", err)
	}
	return nil
}

// gcLinks deletes the veth of every recorded attachment of n not in keep,
// and its record. A record that does not load, or is not its owner's, is
// reported and left as it is, as attachment.Collect does.
func gcLinks(n *NetConf, keep map[string]bool) error {
	store := state.New(n.StateDir)
	tags, err := store.List(attachment.LinkKind)
	if err != nil {
		return cnierr.IO("bridge: GC: %v", err)
	}
	var errs []error
	for _, tag := range tags {
		var rec attachment.Link
		if keep[tag] {
			continue
		}
		if _, err := store.Load(attachment.LinkKind, tag, &rec); err != nil {
			errs = append(errs, err)
			continue
		}
		if !rec.Intact(tag) {
			errs = append(errs, fmt.Errorf("link record %s is not an attachment's record: left as it is", tag))
			continue
		}
		if rec.Owner.Network != n.Name {
			continue // another network's
		}
		if err := delLinkByName(perRequest(), rec.HostVeth); err != nil && !errors.Is(err, errLinkNotFound) {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, store.Remove(attachment.LinkKind, tag))
	}
	errs = append(errs, attachment.CollectTemps(store, attachment.LinkKind, n.Name, keep, attachment.LinkNetwork))
	if err := errors.Join(errs...); err != nil {
		return cnierr.IO("bridge: GC of veths: %v", err)
	}
	return nil
}
