// Package host makes the netfilter backends of a real machine: it picks
// one by name, wires the nftables backend to iptables' accepts, and knows
// which backends the kernel offers. Plugins and dnetctl use it; the
// backends themselves know nothing of each other.
package host

import (
	"fmt"
	"strings"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter/ipt"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter/nft"
)

// Host is the machine's netfilter as the plugins use it.
type Host struct{ Opts netfilter.Options }

// New returns the backend called name for family f ("" picks as Resolve).
func (h Host) New(name string, f netfilter.Family) (netfilter.Backend, error) {
	switch strings.ToLower(name) {
	case netfilter.NameIPTables:
		b, err := ipt.New(f, h.Opts)
		if err != nil {
			return nil, err
		}
		if netfilter.NFTablesAvailable() {
			b.Sources, _ = nft.New(f, nil) // allowlists live in the nftables table
		}
		return b, nil
	case netfilter.NameNFTables:
		b, err := nft.New(f, ipt.Accepts{Opts: h.Opts})
		if err != nil {
			return nil, err
		}
		return b, nil
	case "":
		return h.New(Resolve("", netfilter.Features{}), f)
	}
	return nil, netfilter.ValidateBackendName(name)
}

// Usable reports why the backend called name cannot serve family f here,
// or nil: what a STATUS asks. iptables must also read its nat table (the
// binary may be there with no kernel support behind it).
func (h Host) Usable(name string, f netfilter.Family) error {
	be, err := h.New(Resolve(name, netfilter.Features{}), f)
	if err != nil {
		return err
	}
	if b, ok := be.(*ipt.Backend); ok {
		return b.ProbeNAT()
	}
	return nil
}

// Available lists the backends a DEL without a record must search.
func (Host) Available() []string {
	out := []string{netfilter.NameIPTables}
	if netfilter.NFTablesAvailable() {
		out = append(out, netfilter.NameNFTables)
	}
	return out
}

// Features are what the backend called name implements.
func Features(name string) netfilter.Features {
	if strings.EqualFold(name, netfilter.NameNFTables) {
		return nft.Features
	}
	return ipt.Features
}

// Resolve turns a configured backend name ("" for automatic) into the one
// to use: nftables when the kernel has it and it implements every key
// needed, otherwise iptables.
func Resolve(name string, needs netfilter.Features) string {
	switch strings.ToLower(name) {
	case netfilter.NameIPTables:
		return netfilter.NameIPTables
	case netfilter.NameNFTables:
		return netfilter.NameNFTables
	}
	if len(nft.Features.Lacks(needs)) == 0 && netfilter.NFTablesAvailable() {
		return netfilter.NameNFTables
	}
	return netfilter.NameIPTables
}

// CheckSupported reports, as a config error's text, keys the configured
// backend does not implement ("" for automatic: Resolve picks one that does).
func CheckSupported(name string, needs netfilter.Features) error {
	if name == "" {
		return nil
	}
	if lacks := Features(name).Lacks(needs); len(lacks) > 0 {
		return fmt.Errorf("%s are not implemented by the %s backend: drop them or use \"backend\": \"iptables\"", strings.Join(lacks, ", "), strings.ToLower(name))
	}
	return nil
}
