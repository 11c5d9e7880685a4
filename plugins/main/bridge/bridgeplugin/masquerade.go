package bridgeplugin

import (
	"fmt"
	"os"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/dockernet/cni-plugins/plugins/pkg/cnierr"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/state"
)

// addMasquerade records, then installs, the outbound masquerade of each
// container address; undo removes both.
func addMasquerade(n *NetConf, o netfilter.Owner, result *current.Result, undo *undoStack) error {
	rec := netfilter.MasqRecord{Backend: netfilter.Resolve(n.IPMasqBackend, false)}
	if n.IPMasqBackend == "" {
		fmt.Fprintf(os.Stderr, "bridge: ipMasq uses the %s backend (no \"ipMasqBackend\" configured)\n", rec.Backend)
	}
	for _, ipc := range result.IPs {
		rec.Specs = append(rec.Specs, netfilter.MasqSpec{Owner: o, IP: ipc.Address.IP, Bridge: n.BrName})
	}
	store := state.New(n.StateDir)
	if err := state.Replace(store, netfilter.KindMasq, o.Tag(), rec, removeMasq); err != nil {
		return err
	}
	undo.push(func() { _ = store.Remove(netfilter.KindMasq, o.Tag()) })
	for _, spec := range rec.Specs {
		be, err := netfilter.New(rec.Backend, spec.Family())
		if err != nil {
			return cnierr.Config("bridge: ipMasq: %v", err)
		}
		if err := be.AddMasquerade(spec); err != nil {
			return cnierr.Wrap(err, "bridge: install masquerade")
		}
		undo.push(func() { _ = be.DelMasquerade(spec) })
	}
	return nil
}

// delMasquerade removes what the record says ADD installed; without a
// record (lost, or ipMasq just turned on) it searches every backend by tag.
func delMasquerade(n *NetConf, o netfilter.Owner) error {
	store := state.New(n.StateDir)
	var rec netfilter.MasqRecord
	found, err := store.Load(netfilter.KindMasq, o.Tag(), &rec)
	if err != nil {
		return cnierr.IO("bridge: %v", err)
	}
	if !found {
		if !n.IPMasq {
			return nil
		}
		for _, name := range netfilter.AvailableBackends() {
			backends, err := netfilter.CleanupBackends(name, delFamilies(n))
			if err != nil {
				return cnierr.Config("bridge: ipMasq: %v", err)
			}
			for _, be := range backends {
				if err := be.DelMasquerade(netfilter.MasqSpec{Owner: o}); err != nil {
					return cnierr.Wrap(err, "bridge: remove masquerade")
				}
			}
		}
		return nil
	}
	if err := removeMasq(rec); err != nil {
		return err
	}
	if err := store.Remove(netfilter.KindMasq, o.Tag()); err != nil {
		return cnierr.IO("bridge: %v", err)
	}
	return nil
}

// removeMasq deletes the rules rec says were installed.
func removeMasq(rec netfilter.MasqRecord) error {
	for _, spec := range rec.Specs {
		backends, err := netfilter.CleanupBackends(rec.Backend, []netfilter.Family{spec.Family()})
		if err != nil {
			return cnierr.Config("bridge: ipMasq: %v", err)
		}
		for _, be := range backends {
			if err := be.DelMasquerade(spec); err != nil {
				return cnierr.Wrap(err, "bridge: remove masquerade")
			}
		}
	}
	return nil
}

// masqBackend is the backend that installed o's masquerade, or would.
func masqBackend(n *NetConf, o netfilter.Owner) string {
	var rec netfilter.MasqRecord
	if found, err := state.New(n.StateDir).Load(netfilter.KindMasq, o.Tag(), &rec); err == nil && found {
		return rec.Backend
	}
	return netfilter.Resolve(n.IPMasqBackend, false)
}
