// Package ctl is the operator's command: what the plugins installed, as
// their records say, compared with the kernel, and put back after a
// firewall flush, with no runtime involved.
package ctl

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/dockernet/cni-plugins/plugins/cmd/dnetctl/watch"
	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
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
	GatewayMode    string `json:"gatewayMode,omitempty"`
	GatewayModeWhy string `json:"gatewayModeWhy,omitempty"`
	// Held are the host ports the node agent (dnetctl watch) holds for
	// this attachment, as sockets it bound; empty without the agent.
	Held     []string `json:"held,omitempty"`
	Problems []string `json:"problems,omitempty"`

	records []attachment.Stored // in attachment.Kinds order
}

// Load reads every record in env's store and groups them by attachment,
// sorted by network, then container. Records that do not load are named
// in the error; the attachments of the others are returned all the same.
func Load(env attachment.Env) ([]*Attachment, error) {
	byTag, loadErr := attachment.All(env)
	out := make([]*Attachment, 0, len(byTag))
	for tag, recs := range byTag {
		o := recs[0].Owner()
		a := &Attachment{Tag: tag, Network: o.Network, ContainerID: o.ContainerID, IfName: o.IfName, records: recs}
		for _, st := range recs {
			a.Backends = append(a.Backends, st.Kind()+"="+st.Backend())
			for _, ip := range st.Addresses() {
				if !slices.Contains(a.Addresses, ip.String()) {
					a.Addresses = append(a.Addresses, ip.String())
				}
			}
			for _, m := range st.Ports() {
				if d := m.String(); !slices.Contains(a.Ports, d) {
					a.Ports = append(a.Ports, d)
				}
			}
			if specs := attachment.SpecsOf(attachment.Forwarding, st); len(specs) > 0 {
				a.GatewayMode, a.GatewayModeWhy = specs[0].Mode, specs[0].ModeWhy
			}
		}
		sort.Strings(a.Backends)
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Network != out[j].Network {
			return out[i].Network < out[j].Network
		}
		return out[i].ContainerID+out[i].IfName < out[j].ContainerID+out[j].IfName
	})
	return out, loadErr
}

// mappings lists a's published ports with their specs.
func (a *Attachment) mappings() []published {
	var out []published
	for _, st := range a.records {
		for _, spec := range attachment.SpecsOf(attachment.PortMappings, st) {
			for _, m := range spec.Mappings {
				out = append(out, published{spec: spec, m: m, backend: st.Backend(), mode: a.GatewayMode, modeWhy: a.GatewayModeWhy})
			}
		}
	}
	return out
}

// Check fills each attachment's Problems with what the kernel lacks.
func Check(env attachment.Env, as []*Attachment) {
	for _, a := range as {
		a.Problems = nil
		for _, st := range a.records {
			if err := st.Verify(env); err != nil {
				a.Problems = append(a.Problems, err.Error())
			}
		}
	}
}

// Restore installs again whatever the records say and the kernel lacks;
// what is in place stays as it is. Each attachment is one transaction.
func Restore(env attachment.Env, as []*Attachment) error {
	for _, a := range as {
		change := env.Begin("restore " + a.ContainerID)
		for _, st := range a.records {
			st.Reapply(change)
		}
		if err := change.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// PrintRestore writes what Restore would install, installing nothing:
// per attachment whose state is incomplete, its transaction.
func PrintRestore(env attachment.Env, as []*Attachment, w io.Writer) error {
	var errs []error
	for _, a := range as {
		change := env.Begin("restore " + a.ContainerID)
		for _, st := range a.records {
			st.Reapply(change)
		}
		var b strings.Builder
		errs = append(errs, change.Print(&b))
		if b.Len() > 0 {
			fmt.Fprintf(w, "# %s %s/%s\n%s", a.Network, a.ContainerID, a.IfName, b.String())
		}
	}
	return errors.Join(errs...)
}

// markHeld fills each attachment's Held from a live agent's status file.
func markHeld(as []*Attachment, statusFile string) {
	st, ok := watch.ReadStatus(statusFile)
	if !ok {
		return
	}
	held := map[string]bool{}
	for _, h := range st.Held {
		held[h] = true
	}
	for _, a := range as {
		for _, p := range a.mappings() {
			if key, ok := watch.PortKey(p.spec.Family(), p.m); ok && held[key] && !slices.Contains(a.Held, key) {
				a.Held = append(a.Held, key)
			}
		}
	}
}
