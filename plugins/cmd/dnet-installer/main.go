// Command dnet-installer is the cluster installer's entrypoint: on every
// node (a DaemonSet, conf/kubernetes/dnet-installer.yaml) it copies the
// plugins into the node's /opt/cni/bin and writes the conflist, with the
// node's pod CIDR, into its /etc/cni/net.d, each atomically; then it waits,
// so that the pod stays up and a restart installs again, or, with -watch,
// becomes the node agent (dnetctl watch, plugins/cmd/dnetctl/watch).
//
// With -binaries-only it copies the plugins alone, for nodes whose
// conflist another component writes (flannel, k3s); without it, it writes
// no conflist beside another network's.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/dockernet/cni-plugins/plugins/cmd/dnet-installer/node"
	"github.com/dockernet/cni-plugins/plugins/pkg/install"
)

// Where the DaemonSet mounts the node's directories.
const (
	nodeBinDir  = "/host/opt/cni/bin"
	nodeConfDir = "/host/etc/cni/net.d"
)

type options struct {
	src, binDir, confDir, conflist, podCIDR, clusterCIDR string
	wait, binariesOnly, watch                            bool
}

// Where the agent finds the node's plugin state, libcni's cache and the
// plugins' locks: the DaemonSet mounts them at the node's own paths, so
// that the plugins it runs for a collection see what they would see.
const (
	agentStateDir  = "/var/lib/cni/dockernet"
	agentStatus    = "/run/dockernet/watch.json"
	agentCollectIn = "5m"
)

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("dnet-installer", flag.ContinueOnError)
	fs.StringVar(&o.src, "src", "/opt/dnet", "the image's plugins (bin/) and conflist")
	fs.StringVar(&o.binDir, "bin-dir", nodeBinDir, "the node's plugin directory, mounted")
	fs.StringVar(&o.confDir, "conf-dir", nodeConfDir, "the node's conflist directory, mounted")
	fs.StringVar(&o.conflist, "conflist", "10-dockernet.conflist", "the conflist under -src")
	fs.StringVar(&o.podCIDR, "pod-cidr", "", "the node's pod CIDR (default: the Node object's spec.podCIDRs, for node $NODE_NAME)")
	fs.StringVar(&o.clusterCIDR, "cluster-cidr", "", "the cluster's pod network, never masqueraded between pods (default: as the cluster states it, kubeadm's podSubnet or kube-proxy's clusterCIDR; else the conflist's nonMasqueradeCIDRs, 10.244.0.0/16)")
	fs.BoolVar(&o.wait, "wait", false, "after installing, wait for SIGTERM (a DaemonSet's container)")
	fs.BoolVar(&o.binariesOnly, "binaries-only", false, "copy the plugins only, never touching -conf-dir (flannel, k3s: another component writes the conflist)")
	fs.BoolVar(&o.watch, "watch", false, "after installing, run the node agent (dnetctl watch -collect) until SIGTERM, instead of waiting")
	err := fs.Parse(args)
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	return o, err
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "dnet-installer:", err)
		os.Exit(1)
	}
	if o.watch {
		fmt.Fprintln(os.Stderr, "dnet-installer: exec:", strings.Join(agentArgs(o), " "))
		err := syscall.Exec(filepath.Join(o.src, "bin", "dnetctl"), agentArgs(o), os.Environ())
		fmt.Fprintln(os.Stderr, "dnet-installer: run the node agent:", err)
		os.Exit(1)
	}
	if o.wait {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
	}
}

// agentArgs are the node agent's command line: it holds the published
// ports, restores them after a firewall reload, and collects pods whose
// netns has been gone for five minutes with the plugins the node runs.
func agentArgs(o options) []string {
	return []string{"dnetctl", "-state-dir", agentStateDir, "watch", "-collect", "-grace", agentCollectIn,
		"-cni-path", o.binDir, "-status-file", agentStatus}
}

func run(o options) error {
	if o.binariesOnly {
		written, err := install.Plugins(install.Options{SrcBin: filepath.Join(o.src, "bin"), Plugins: install.PluginBinaries, BinDir: o.binDir})
		if err != nil {
			return err
		}
		fmt.Printf("dnet-installer: plugins %v in %s (the conflist is another component's): %d files written\n", install.PluginBinaries, o.binDir, len(written))
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client, err := inCluster()
	podCIDR := o.podCIDR
	if podCIDR == "" {
		name := os.Getenv("NODE_NAME")
		if name == "" {
			return fmt.Errorf("no -pod-cidr and no NODE_NAME to read it from")
		}
		if client == nil {
			return fmt.Errorf("no -pod-cidr, and not in a cluster: %w", err)
		}
		if podCIDR, err = node.PodCIDR(ctx, client, name, 2*time.Second); err != nil {
			return err
		}
		fmt.Printf("dnet-installer: node %s has pod CIDR %s\n", name, podCIDR)
	}
	clusterCIDR := o.clusterCIDR
	if clusterCIDR == "" && client != nil {
		cidr, source, err := node.ClusterCIDR(ctx, client)
		if err != nil {
			return fmt.Errorf("the cluster's pod network: %w (or give -cluster-cidr)", err)
		}
		if cidr != "" {
			clusterCIDR = cidr
			fmt.Printf("dnet-installer: the cluster's pod network is %s (%s)\n", cidr, source)
		}
	}
	tmpl, err := os.ReadFile(filepath.Join(o.src, o.conflist))
	if err != nil {
		return err
	}
	res, err := install.Run(install.Options{
		SrcBin: filepath.Join(o.src, "bin"), Plugins: install.PluginBinaries, BinDir: o.binDir, ConfDir: o.confDir,
		Template: tmpl, FileName: filepath.Base(o.conflist), Subnet: podCIDR, ClusterCIDR: clusterCIDR, Exclusive: true, Log: os.Stdout,
	}, install.NetlinkHost{})
	if err != nil {
		return err
	}
	fmt.Printf("dnet-installer: network %s on bridge %s, %s: %d files written\n", res.Network, res.Bridge, res.Subnet, len(res.Written))
	return nil
}

// inCluster is a client of the cluster the installer runs in; nil, with
// the reason, outside one.
func inCluster() (kubernetes.Interface, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, err
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return c, nil
}
