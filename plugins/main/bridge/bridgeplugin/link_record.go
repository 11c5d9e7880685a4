package bridgeplugin

import (
	"errors"
	"fmt"

	"github.com/containernetworking/plugins/pkg/ip"

	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/state"
)

// A veth pair is made in two steps (created, then put on the bridge), so
// a crash in between leaves a host veth nothing on the bridge points to.
// Its record, written before the pair exists, lets GC find it: intent
// first, as for every other piece of an attachment's state.
const linkKind = "link"

// linkRecord is what the record holds: whose veth, under which name.
type linkRecord struct {
	Owner    netfilter.Owner
	HostVeth string
}

func recordLink(n *NetConf, o netfilter.Owner) error {
	if err := state.New(n.StateDir).Save(linkKind, o.Tag(), linkRecord{Owner: o, HostVeth: o.HostVeth()}); err != nil {
		return cnierr.IO("bridge: %v", err)
	}
	return nil
}

func forgetLink(n *NetConf, o netfilter.Owner) error {
	if err := state.New(n.StateDir).Remove(linkKind, o.Tag()); err != nil {
		return cnierr.IO("bridge: %v", err)
	}
	return nil
}

// gcLinks deletes the veth of every recorded attachment of n not in keep,
// and its record. A record that does not load, or is not its owner's, is
// reported and left as it is, as attachment.Collect does.
func gcLinks(n *NetConf, keep map[string]bool) error {
	store := state.New(n.StateDir)
	tags, err := store.List(linkKind)
	if err != nil {
		return cnierr.IO("bridge: GC: %v", err)
	}
	var errs []error
	for _, tag := range tags {
		var rec linkRecord
		if keep[tag] {
			continue
		}
		if _, err := store.Load(linkKind, tag, &rec); err != nil {
			errs = append(errs, err)
			continue
		}
		if rec.Owner.Tag() != tag || rec.HostVeth != rec.Owner.HostVeth() {
			errs = append(errs, fmt.Errorf("link record %s is not an attachment's record: left as it is", tag))
			continue
		}
		if rec.Owner.Network != n.Name {
			continue // another network's
		}
		if err := ip.DelLinkByName(rec.HostVeth); err != nil && !errors.Is(err, ip.ErrLinkNotFound) {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, store.Remove(linkKind, tag))
	}
	if err := errors.Join(errs...); err != nil {
		return cnierr.IO("bridge: GC of veths: %v", err)
	}
	return nil
}
