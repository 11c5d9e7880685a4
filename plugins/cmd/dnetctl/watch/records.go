package watch

import (
	"fmt"
	"net"
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
	// usages are what the records install, by backend and family: what
	// the probe looks for. Derived at each reload.
	usages map[use]*usage
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
	r.byTag, r.sig, r.usages = byTag, sig, usagesOf(byTag)
	return err
}

func (r *records) count() int { return len(r.byTag) }

// use is a backend and family some records install through.
type use struct {
	backend string
	f       netfilter.Family
}

// usage is what the records install through one use: the kinds of base
// state they rely on (each network once), and every spec, for the
// thorough probe's element by element look.
type usage struct {
	kinds netfilter.BaseKinds
	ports []netfilter.PortMapSpec
	masq  []netfilter.MasqSpec
	fwd   []netfilter.ForwardSpec
	nets  map[network]bool // the networks of kinds.Networks
}

// network is what makes a forwarding spec's per-network rules: specs
// alike in it share them.
type network struct {
	bridge, subnet, trusted                            string
	protect, routed, isolate, isolateOut, noICC, guard bool
}

func usagesOf(byTag map[string][]attachment.Stored) map[use]*usage {
	out := map[use]*usage{}
	at := func(backend string, ip net.IP) *usage {
		u := use{backend, netfilter.FamilyOf(ip)}
		if out[u] == nil {
			out[u] = &usage{nets: map[network]bool{}}
		}
		return out[u]
	}
	for _, recs := range byTag {
		for _, st := range recs {
			for _, s := range attachment.SpecsOf(attachment.PortMappings, st) {
				u := at(st.Backend(), s.ContainerIP)
				u.ports = append(u.ports, s)
				u.kinds.Ports = u.kinds.Ports || !s.Routed
				for _, m := range s.Mappings {
					u.kinds.Sources = u.kinds.Sources || len(m.Sources) > 0
				}
			}
			for _, s := range attachment.SpecsOf(attachment.Masquerade, st) {
				u := at(st.Backend(), s.IP)
				u.masq = append(u.masq, s)
				u.kinds.Masquerade = true
			}
			for _, s := range attachment.SpecsOf(attachment.Forwarding, st) {
				u := at(st.Backend(), s.IP)
				u.fwd = append(u.fwd, s)
				u.kinds.Forward = true
				n := network{s.Bridge, fmt.Sprint(s.Subnet), strings.Join(s.Trusted, ","), s.Protect, s.Routed, s.Isolate, s.IsolateOut, s.NoICC, s.Guard}
				if !u.nets[n] {
					u.nets[n] = true
					u.kinds.Networks = append(u.kinds.Networks, s)
				}
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
