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
	// used is what uses gave for the records of sig, specs what specs did.
	used     map[use]netfilter.BaseKinds
	usedSig  string
	specs    map[use]*useSpecs
	specsSig string
}

// useSpecs are the specs the records install through one backend and family.
type useSpecs struct {
	ports []netfilter.PortMapSpec
	masq  []netfilter.MasqSpec
	fwd   []netfilter.ForwardSpec
}

// specsByUse groups every record's specs by backend and family: what the
// agent's thorough probe checks element by element.
func (r *records) specsByUse() map[use]*useSpecs {
	if r.specs != nil && r.specsSig == r.sig {
		return r.specs
	}
	out := map[use]*useSpecs{}
	at := func(backend string, ip net.IP) *useSpecs {
		u := use{backend, netfilter.FamilyOf(ip)}
		if out[u] == nil {
			out[u] = &useSpecs{}
		}
		return out[u]
	}
	for _, recs := range r.byTag {
		for _, st := range recs {
			for _, s := range attachment.SpecsOf(attachment.PortMappings, st) {
				at(st.Backend(), s.ContainerIP).ports = append(at(st.Backend(), s.ContainerIP).ports, s)
			}
			for _, s := range attachment.SpecsOf(attachment.Masquerade, st) {
				at(st.Backend(), s.IP).masq = append(at(st.Backend(), s.IP).masq, s)
			}
			for _, s := range attachment.SpecsOf(attachment.Forwarding, st) {
				at(st.Backend(), s.IP).fwd = append(at(st.Backend(), s.IP).fwd, s)
			}
		}
	}
	r.specs, r.specsSig = out, r.sig
	return out
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
	if r.used != nil && r.usedSig == r.sig {
		return r.used
	}
	out := map[use]netfilter.BaseKinds{}
	defer func() { r.used, r.usedSig = out, r.sig }()
	networks := map[string]bool{}
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
					for _, s := range attachment.SpecsOf(attachment.Forwarding, st) {
						if !s.IP.Equal(ip) {
							continue
						}
						// One spec per network and settings: its rules are the network's.
						key := fmt.Sprintf("%s %s %s %v %v %v %v %v %v %v", u.backend, u.f, s.Bridge, s.Subnet, s.Protect, s.Routed, s.Isolate, s.IsolateOut, s.NoICC, s.Guard) + strings.Join(s.Trusted, ",")
						if !networks[key] {
							networks[key] = true
							k.Networks = append(k.Networks, s)
						}
					}
				case attachment.PortMappings.Name:
					for _, s := range attachment.SpecsOf(attachment.PortMappings, st) {
						k.Ports = k.Ports || !s.Routed
						for _, m := range s.Mappings {
							k.Sources = k.Sources || len(m.Sources) > 0
						}
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
