// Package ctl is the operator's command: what the plugins installed, as
// their records say, compared with the kernel, and put back after a
// firewall flush, with no runtime involved.
package ctl

import (
	"errors"
	"net"
	"slices"
	"sort"

	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
)

// Attachment is what the records hold for one container interface on one
// network.
type Attachment struct {
	Tag         string   `json:"tag"`
	Network     string   `json:"network"`
	ContainerID string   `json:"containerID"`
	IfName      string   `json:"ifname"`
	Addresses   []string `json:"addresses"`
	Ports       []string `json:"ports,omitempty"`
	Backends    []string `json:"backends"` // kind=backend
	// GatewayMode is the bridge's gateway mode for this attachment (from
	// its forwarding record), and GatewayModeWhy why it applies.
	GatewayMode    string   `json:"gatewayMode,omitempty"`
	GatewayModeWhy string   `json:"gatewayModeWhy,omitempty"`
	Problems       []string `json:"problems,omitempty"`

	masq    *attachment.Record[netfilter.MasqSpec]
	forward *attachment.Record[netfilter.ForwardSpec]
	portmap *attachment.Record[netfilter.PortMapSpec]
}

// Load reads every record in env's store and groups them by attachment,
// sorted by network, then container.
func Load(env attachment.Env) ([]*Attachment, error) {
	byTag := map[string]*Attachment{}
	err := errors.Join(
		gather(env, byTag, attachment.Masquerade, func(a *Attachment, rec *attachment.Record[netfilter.MasqSpec]) {
			a.masq = rec
		}, func(s netfilter.MasqSpec) (netfilter.Owner, net.IP, []netfilter.PortMapping) {
			return s.Owner, s.IP, nil
		}),
		gather(env, byTag, attachment.Forwarding, func(a *Attachment, rec *attachment.Record[netfilter.ForwardSpec]) {
			a.forward = rec
			a.GatewayMode, a.GatewayModeWhy = rec.Specs[0].Mode, rec.Specs[0].ModeWhy
		}, func(s netfilter.ForwardSpec) (netfilter.Owner, net.IP, []netfilter.PortMapping) {
			return s.Owner, s.IP, nil
		}),
		gather(env, byTag, attachment.PortMappings, func(a *Attachment, rec *attachment.Record[netfilter.PortMapSpec]) {
			a.portmap = rec
		}, func(s netfilter.PortMapSpec) (netfilter.Owner, net.IP, []netfilter.PortMapping) {
			return s.Owner, s.ContainerIP, s.Mappings
		}))
	if err != nil {
		return nil, err
	}
	out := make([]*Attachment, 0, len(byTag))
	for _, a := range byTag {
		sort.Strings(a.Backends)
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Network != out[j].Network {
			return out[i].Network < out[j].Network
		}
		return out[i].ContainerID+out[i].IfName < out[j].ContainerID+out[j].IfName
	})
	return out, nil
}

// gather adds kind's records to byTag: keep stores the record on its
// attachment, and parts says what a spec holds (owner, address, ports).
func gather[S attachment.Spec](env attachment.Env, byTag map[string]*Attachment, kind attachment.Kind[S],
	keep func(*Attachment, *attachment.Record[S]), parts func(S) (netfilter.Owner, net.IP, []netfilter.PortMapping)) error {
	recs, err := kind.Records(env)
	if err != nil {
		return err
	}
	for tag, rec := range recs {
		if len(rec.Specs) == 0 {
			continue
		}
		o, _, _ := parts(rec.Specs[0])
		a := byTag[tag]
		if a == nil {
			a = &Attachment{Tag: tag, Network: o.Network, ContainerID: o.ContainerID, IfName: o.IfName}
			byTag[tag] = a
		}
		keep(a, &rec)
		a.Backends = append(a.Backends, kind.Name+"="+rec.Backend)
		for _, s := range rec.Specs {
			_, ip, mappings := parts(s)
			if ip != nil && !slices.Contains(a.Addresses, ip.String()) {
				a.Addresses = append(a.Addresses, ip.String())
			}
			for _, m := range mappings {
				if d := m.String(); !slices.Contains(a.Ports, d) {
					a.Ports = append(a.Ports, d)
				}
			}
		}
	}
	return nil
}

// Check fills each attachment's Problems with what the kernel lacks.
func Check(env attachment.Env, as []*Attachment) {
	for _, a := range as {
		a.Problems = nil
		if a.masq != nil {
			if err := attachment.Masquerade.Verify(env, *a.masq); err != nil {
				a.Problems = append(a.Problems, err.Error())
			}
		}
		if a.forward != nil {
			if err := attachment.Forwarding.Verify(env, *a.forward); err != nil {
				a.Problems = append(a.Problems, err.Error())
			}
		}
		if a.portmap != nil {
			if err := attachment.PortMappings.Verify(env, *a.portmap); err != nil {
				a.Problems = append(a.Problems, err.Error())
			}
		}
	}
}

// Restore installs again whatever the records say and the kernel lacks;
// what is in place stays as it is. The nftables changes of each
// attachment are one transaction.
func Restore(env attachment.Env, as []*Attachment) error {
	for _, a := range as {
		err := netfilter.Batch(func() error {
			if a.masq != nil {
				if err := attachment.Masquerade.Reapply(env, *a.masq); err != nil {
					return err
				}
			}
			if a.forward != nil {
				if err := attachment.Forwarding.Reapply(env, *a.forward); err != nil {
					return err
				}
			}
			if a.portmap != nil {
				return attachment.PortMappings.Reapply(env, *a.portmap)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
