package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/dockernet/cni-plugins/plugins/cmd/dnetctl/watch"
	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter/reference"
	"github.com/dockernet/cni-plugins/plugins/pkg/state"
)

const usage = `usage: dnetctl [-state-dir DIR] COMMAND [FLAGS]

  list      [-json] every attachment the records hold: network, container,
            interface, addresses, published ports, gateway mode, backends
  check     [-json] the same, compared with the kernel, and any state the reference
            plugins left; exit status 1 when something is missing or foreign
  restore   [-json] [-dry-run] install again whatever a firewall flush or reload
            removed; -dry-run prints each transaction (nftables operations, iptables
            restore input) and installs nothing
  gc        [-grace DUR] [-cni-path DIR] [-cache-dir DIR]: every network of the
            state directory, no conflist needed: delete each attachment whose veth
            is gone (its container is) and whose link record is older than -grace
            (a DEL through libcni's cache, else by its records: rules, host ports,
            addresses), then what networks and the host hold for none
  gc        -conflist FILE [-cni-path DIR] [-cache-dir DIR] [-valid ID/IFNAME ...]:
            CNI GC of that network (a DEL for each cached attachment not listed,
            then every plugin's GC), keeping only the attachments listed
  uninstall [-force]: remove every rule, element, chain and table of ours in both
            backends and families, set back the sysctls we changed, and delete the
            state directory; refused while an attachment's veth exists, unless -force
  explain   [-proto tcp|udp|sctp] [-addr IP] PORT: the path a packet to that
            published host port takes now, hop by hop: the DNAT element or rule,
            route, bridge port, veth, forwarding and masquerade rules with their
            counters, and the connections conntrack tracks
  watch     [-poll DUR] [-hold-ports] [-collect] [-grace DUR] [-cni-path DIR]
            [-cache-dir DIR] [-status-file FILE]: the optional node agent: puts back
            what a firewall flush or reload removed as soon as nf_tables reports it
            (or within -poll), holds every published host port while it is
            published, and with -collect deletes attachments whose container is gone
  install   -conflist FILE [-bin-src DIR] [-bin-dir DIR] [-conf-dir DIR]
            [-subnet CIDR] [-bridge NAME]: the plugins and the conflist, each
            written atomically; a bridge name or subnet this host already uses
            (Docker's docker0, 172.17.0.0/16) is replaced by a free one
`

// Main runs the command line args and returns the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	global := flag.NewFlagSet("dnetctl", flag.ContinueOnError)
	global.SetOutput(stderr)
	stateDir := global.String("state-dir", state.DefaultDir, "the plugins' stateDir")
	global.Usage = func() { fmt.Fprint(stderr, usage) }
	if err := global.Parse(args); err != nil || global.NArg() == 0 {
		global.Usage()
		return 2
	}
	// Each command has flags of its own: one it does not take is an error.
	cmd, rest := global.Arg(0), global.Args()[1:]
	env := attachment.HostEnv(*stateDir)
	switch cmd {
	case "install":
		return runInstall(rest, stdout, stderr)
	case "explain":
		return runExplain(env, rest, stdout, stderr)
	case "list", "check", "restore":
		return runReport(env, cmd, rest, stdout, stderr)
	case "gc":
		return runGC(env, rest, stdout, stderr)
	case "uninstall":
		return runUninstall(env, rest, stdout, stderr)
	case "watch":
		return runWatch(env, rest, stderr)
	}
	global.Usage()
	return 2
}

// runReport is list, check and restore: the records, compared with the
// kernel for check and restore, after restore has put back what is missing.
func runReport(env attachment.Env, cmd string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	statusFile := fs.String("status-file", watch.DefaultStatusFile, "the node agent's status file, for the ports it holds")
	var dryRun *bool
	if cmd == "restore" {
		dryRun = fs.Bool("dry-run", false, "print what would be installed, install nothing")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "dnetctl %s: unexpected arguments %v\n", cmd, fs.Args())
		return 2
	}
	fail := func(err error) int { fmt.Fprintln(stderr, "dnetctl:", err); return 1 }
	as, unreadable := Load(env)
	markHeld(as, *statusFile)
	if unreadable != nil {
		fmt.Fprintln(stderr, "dnetctl: some records do not load, and are left as they are:", unreadable)
	}
	var err error
	if dryRun != nil && *dryRun {
		if err := PrintRestore(env, as, stdout); err != nil {
			return fail(err)
		}
		return 0
	}
	if cmd == "restore" {
		if err := Restore(env, as); err != nil {
			return fail(err)
		}
	}
	var foreign []reference.Attachment
	if cmd != "list" {
		Check(env, as)
		if foreign, err = Foreign(); err != nil {
			return fail(err)
		}
	}
	if err := printReport(stdout, as, foreign, cmd != "list", *asJSON); err != nil {
		return fail(err)
	}
	for _, a := range as {
		if len(a.Problems) > 0 {
			return 1
		}
	}
	if len(foreign) > 0 || unreadable != nil {
		return 1
	}
	return 0
}

// runGC is gc: CNI GC of one network through libcni.
func runGC(env attachment.Env, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	conflist := fs.String("conflist", "", "the network's conflist")
	cniPath := fs.String("cni-path", "/opt/cni/bin", "where the plugins are")
	cacheDir := fs.String("cache-dir", "", "libcni's cache of attachments (default its own, /var/lib/cni)")
	grace := fs.Duration("grace", 30*time.Second, "without -conflist: how old a link record whose veth is gone must be (an ADD writes it just before the veth)")
	var valid validList
	fs.Var(&valid, "valid", "a live attachment, ID/IFNAME (repeat)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int { fmt.Fprintln(stderr, "dnetctl:", err); return 1 }
	if fs.NArg() > 0 {
		return fail(errors.New("gc takes flags only"))
	}
	if *conflist == "" {
		if len(valid) > 0 {
			return fail(errors.New("-valid needs -conflist: without one, gc finds gone attachments by their veths"))
		}
		c := &watch.Collector{Grace: *grace, CNIPath: strings.Split(*cniPath, ":"), CacheDir: *cacheDir}
		n, err := c.Once(env, log.New(stdout, "gc: ", 0), time.Now())
		fmt.Fprintf(stdout, "gc: %d attachments whose container is gone collected\n", n)
		if err != nil {
			return fail(err)
		}
		return 0
	}
	list, err := libcni.ConfListFromFile(*conflist)
	if err != nil {
		return fail(err)
	}
	// The shipped conflists say 1.0.0, which runtimes with a libcni
	// older than 1.2 require, and libcni runs GC only for 1.1.0 and
	// later. Our plugins take 1.1.0 whatever the file says.
	if gcOK, _ := version.GreaterThanOrEqualTo(list.CNIVersion, "1.1.0"); !gcOK {
		list.CNIVersion = "1.1.0"
	}
	cni := libcni.NewCNIConfigWithCacheDir(strings.Split(*cniPath, ":"), *cacheDir, nil)
	if err := cni.GCNetworkList(context.Background(), list, &libcni.GCArgs{ValidAttachments: valid}); err != nil {
		return fail(err)
	}
	fmt.Fprintf(stdout, "gc: network %s now holds only the %d attachments listed\n", list.Name, len(valid))
	return 0
}

type validList []types.GCAttachment

func (v *validList) String() string { return fmt.Sprint(*v) }
func (v *validList) Set(s string) error {
	id, ifname, ok := strings.Cut(s, "/")
	if !ok || id == "" || ifname == "" {
		return fmt.Errorf("%q is not ID/IFNAME", s)
	}
	*v = append(*v, types.GCAttachment{ContainerID: id, IfName: ifname})
	return nil
}

// Foreign lists what the reference plugins left on this host: state no
// record of ours covers, which our DEL and GC of those containers remove.
func Foreign() ([]reference.Attachment, error) {
	var out []reference.Attachment
	for _, f := range netfilter.BothFamilies {
		refs, err := reference.Attachments(f, "", netfilter.Options{})
		if err != nil {
			return nil, err
		}
		for _, r := range refs {
			if !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// printReport writes as for a terminal (one line per attachment, problems
// under the table, then foreign state) or as JSON.
func printReport(w io.Writer, as []*Attachment, foreign []reference.Attachment, withStatus, asJSON bool) error {
	if asJSON {
		if as == nil {
			as = []*Attachment{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if !withStatus {
			return enc.Encode(as)
		}
		return enc.Encode(struct {
			Attachments []*Attachment          `json:"attachments"`
			Foreign     []reference.Attachment `json:"foreign"`
		}{as, foreign})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	header := "NETWORK\tCONTAINER\tIF\tADDRESSES\tPORTS\tMODE\tBACKENDS"
	if withStatus {
		header += "\tSTATUS"
	}
	fmt.Fprintln(tw, header)
	for _, a := range as {
		id := a.ContainerID
		if len(id) > 12 {
			id = id[:12]
		}
		ports := strings.Join(a.Ports, ", ")
		if ports == "" {
			ports = "-"
		}
		if len(a.Held) > 0 {
			ports += fmt.Sprintf(" (%d held)", len(a.Held))
		}
		mode := a.GatewayMode
		if mode == "" {
			mode = "-"
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s", a.Network, id, a.IfName, strings.Join(a.Addresses, ","), ports, mode, strings.Join(a.Backends, ","))
		if withStatus {
			status := "ok"
			if len(a.Problems) > 0 {
				status = "MISSING"
			}
			line += "\t" + status
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, a := range as {
		if a.GatewayModeWhy != "" {
			fmt.Fprintf(w, "%s %s/%s: gatewayMode %s: %s\n", a.Network, a.ContainerID, a.IfName, a.GatewayMode, a.GatewayModeWhy)
		}
	}
	for _, a := range as {
		for _, p := range a.Problems {
			fmt.Fprintf(w, "%s %s/%s: %s\n", a.Network, a.ContainerID, a.IfName, p)
		}
	}
	if len(as) == 0 {
		fmt.Fprintln(w, "(no attachment recorded)")
	}
	for _, r := range foreign {
		fmt.Fprintf(w, "foreign: the reference plugins' rules for container %s on network %s (no record of ours; our DEL or GC of it removes them)\n", r.ContainerID, r.Network)
	}
	return nil
}
