package host

import (
	"fmt"
	"strings"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter/nft"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter/nft/nftfake"
)

// Fake is a machine's netfilter without root: the nftables backend over
// a fake nf_tables kernel, and no iptables. Tests of what is built on the
// backends (the attachment flow, its network and host levels, the node
// agent) run the real backend code through it.
type Fake struct{ Kernel *nftfake.Kernel }

// New returns the nftables backend over the fake kernel.
func (h Fake) New(name string, f netfilter.Family) (netfilter.Backend, error) {
	if name != "" && !strings.EqualFold(name, netfilter.NameNFTables) {
		return nil, fmt.Errorf("the %s backend: not in the fake host, which has nftables only", name)
	}
	return nft.NewWithDial(f, h.Kernel.Dial, nil), nil
}

// Available: nftables only.
func (Fake) Available() []string { return []string{netfilter.NameNFTables} }
