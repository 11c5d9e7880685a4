package watch

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// records are the store's records as last read. They are read again only
// when a kind's directory changed (a record written or removed renames or
// unlinks in it), so an idle look reads no file.
type records struct {
	sig   string
	byTag map[string][]attachment.Stored
	// held is what ports gave for the records of sig: computed again
	// only when they change (a thousand attachments publish 8,000).
	held    map[heldPort]string
	heldSig string
}

func signature(dir string) string {
	var b strings.Builder
	for _, k := range attachment.Kinds {
		if st, err := os.Stat(filepath.Join(dir, k.Folder())); err == nil {
			b.WriteString(st.ModTime().String())
		}
		b.WriteByte('|')
	}
	return b.String()
}

func (r *records) reload(env attachment.Env) error {
	sig := signature(env.Store.Dir)
	if r.byTag != nil && sig == r.sig {
		return nil
	}
	byTag, err := attachment.All(env)
	r.byTag, r.sig = byTag, sig
	return err
}

func (r *records) count() int { return len(r.byTag) }

// use is a backend and family some records install through, and which
// kinds of state they need there.
type use struct {
	backend string
	f       netfilter.Family
}

// uses lists what the records rely on, for probing.
func (r *records) uses() map[use]netfilter.BaseKinds {
	out := map[use]netfilter.BaseKinds{}
	for _, recs := range r.byTag {
		for _, st := range recs {
			for _, ip := range st.Addresses() {
				u := use{st.Backend(), netfilter.FamilyOf(ip)}
				k := out[u]
				switch st.Kind() {
				case attachment.Masquerade.Name:
					k.Masquerade = true
				case attachment.Forwarding.Name:
					k.Forward = true
				case attachment.PortMappings.Name:
					for _, s := range attachment.SpecsOf(attachment.PortMappings, st) {
						k.Ports = k.Ports || !s.Routed
					}
				}
				out[u] = k
			}
		}
	}
	return out
}

// ports are the host ports the records publish: what the agent holds.
func (r *records) ports() map[heldPort]string {
	if r.held != nil && r.heldSig == r.sig {
		return r.held
	}
	out := map[heldPort]string{}
	defer func() { r.held, r.heldSig = out, r.sig }()
	for _, recs := range r.byTag {
		for _, st := range recs {
			for _, s := range attachment.SpecsOf(attachment.PortMappings, st) {
				if s.Routed {
					continue // no host port
				}
				for _, m := range s.Mappings {
					if p, ok := heldPortOf(s.Family(), m); ok {
						out[p] = s.Owner.ContainerID
					}
				}
			}
		}
	}
	return out
}
