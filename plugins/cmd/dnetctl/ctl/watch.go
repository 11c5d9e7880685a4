package ctl

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/dockernet/cni-plugins/plugins/cmd/dnetctl/watch"
	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
)

// runWatch is watch: the node agent, until SIGTERM or SIGINT.
func runWatch(env attachment.Env, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	poll := fs.Duration("poll", time.Second, "how often to look without a notification (iptables-legacy sends none)")
	hold := fs.Bool("hold-ports", true, "hold every published host port while it is published, as Docker does")
	collect := fs.Bool("collect", false, "delete attachments whose container is gone (its veth gone for -grace)")
	grace := fs.Duration("grace", time.Minute, "how long a veth must be gone before its attachment is collected")
	cniPath := fs.String("cni-path", "/opt/cni/bin", "where the plugins are, for the DELs of -collect")
	cacheDir := fs.String("cache-dir", "", "libcni's cache, for the DELs of -collect (default its own, /var/lib/cni)")
	statusFile := fs.String("status-file", watch.DefaultStatusFile, "the status file: the health line, and the ports held")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || *poll <= 0 {
		fmt.Fprintln(stderr, "dnetctl watch: takes flags only, and a positive -poll")
		return 2
	}
	a := watch.New(env, stderr)
	a.Poll, a.Hold, a.StatusFile = *poll, *hold, *statusFile
	if *collect {
		a.Collect = &watch.Collector{Grace: *grace, CNIPath: strings.Split(*cniPath, ":"), CacheDir: *cacheDir}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := a.Run(ctx); err != nil {
		fmt.Fprintln(stderr, "dnetctl watch:", err)
		return 1
	}
	if *statusFile != "" {
		_ = os.Remove(*statusFile)
	}
	return 0
}
