package ctl

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/vishvananda/netlink"

	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter/ipt"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter/nft"
	"github.com/dockernet/cni-plugins/plugins/pkg/procsys"
)

// runUninstall removes everything of ours from the host, for someone
// removing the product: every rule, element, chain and table in both
// backends and families, the sysctls the records say we changed, set
// back, and the state directory. The bridges stay, as after the last
// DEL: they are the networks'. The binaries and conflists are the
// installer's.
func runUninstall(env attachment.Env, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("uninstall", flag.ContinueOnError)
	fs.SetOutput(stderr)
	force := fs.Bool("force", false, "uninstall even while attachments are live: their containers lose their published ports and protections")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return 2
	}
	fail := func(err error) int { fmt.Fprintln(stderr, "dnetctl:", err); return 1 }
	if live := liveAttachments(env); len(live) > 0 && !*force {
		return fail(fmt.Errorf("%d attachments are live (their veths exist, e.g. %s): delete their containers first, or uninstall -force", len(live), live[0]))
	}
	var errs []error
	for _, f := range netfilter.BothFamilies {
		errs = append(errs, ipt.Uninstall(f, netfilter.Options{}), nft.Uninstall(f))
	}
	if err := errors.Join(errs...); err != nil {
		return fail(fmt.Errorf("rules: %v; the state directory %s stays, run uninstall again", err, env.Store.Dir))
	}
	fmt.Fprintln(stdout, "uninstall: removed every rule, chain and table of ours (iptables and nftables, IPv4 and IPv6)")
	for key, was := range changedSysctls(env) {
		if now := procsys.Get(key); now != "" && now != was {
			if err := procsys.Set(key, was); err != nil {
				errs = append(errs, err)
				continue
			}
			fmt.Fprintf(stdout, "uninstall: set %s back to %s\n", key, was)
		}
	}
	if err := os.RemoveAll(env.Store.Dir); err != nil {
		errs = append(errs, err)
	} else {
		fmt.Fprintf(stdout, "uninstall: removed the state directory %s\n", env.Store.Dir)
	}
	if err := errors.Join(errs...); err != nil {
		return fail(err)
	}
	return 0
}

// liveAttachments are the attachments whose host veth exists.
func liveAttachments(env attachment.Env) []string {
	tags, _ := env.Store.List(attachment.LinkKind)
	var out []string
	for _, tag := range tags {
		var rec attachment.Link
		if found, err := env.Store.Load(attachment.LinkKind, tag, &rec); err != nil || !found {
			continue
		}
		if _, err := netlink.LinkByName(rec.HostVeth); err == nil {
			out = append(out, fmt.Sprintf("%s/%s on %s", rec.Owner.ContainerID, rec.Owner.IfName, rec.Owner.Network))
		}
	}
	return out
}

// changedSysctls are the settings the records say an ADD changed, by key,
// with the value found before: the host's forwarding and the networks'.
func changedSysctls(env attachment.Env) map[string]string {
	out := map[string]string{}
	if rec, found, err := env.Forwarding(); err == nil && found {
		for f, c := range rec.Families {
			out[f.ForwardingKey()] = c.Was
		}
	}
	bridges, _ := env.Networks()
	for _, br := range bridges {
		recs, _ := env.NetworkRecords(br)
		for _, rec := range recs {
			for k, v := range rec.Sysctls {
				out[k] = v
			}
		}
	}
	return out
}
