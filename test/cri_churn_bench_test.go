package e2e

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// TestCRIChurnBench: kubelet's default maximum of pods on a node (110)
// started at once through containerd 1.6's CRI (crictl runp in parallel,
// as kubelet's pod workers ask), then stopped and removed at once; ours
// on conf/kubernetes's conflist, then the reference plugins v1.10.0 on
// the same conflist without our extension keys, each on a node of its
// own. Every tenth pod publishes a hostPort. Each plugin binary in the
// node's /opt/cni/bin is wrapped by a shell script that logs when it
// started and ended the plugin (the same few milliseconds of shell on
// both sides, and no other process: see wrapTimed); a pod's network setup is its chain's ADD, from bridge's
// start to portmap's end, its teardown the first DEL, from portmap's
// start to bridge's end. It asserts nothing about time; `make bench-cri`
// runs it (DNET_CRI_BENCH=1), and it is skipped otherwise.
func TestCRIChurnBench(t *testing.T) {
	if os.Getenv("DNET_CRI_BENCH") == "" {
		t.Skip("a benchmark: make bench-cri runs it (DNET_CRI_BENCH=1)")
	}
	testenv.RequireRoot(t)
	const pods = 110
	var report strings.Builder
	fmt.Fprintf(&report, "# make bench-cri, %s: %d pods at once through containerd 1.6's CRI (crictl runp in parallel), every tenth with a hostPort, then stopp and rmp at once; ms, per pod\n", time.Now().Format("2006-01-02"), pods)
	type figures struct{ add, del []time.Duration }
	got := map[string]figures{}
	for _, set := range []string{"ours", "reference"} {
		add, del, up, down := churn(t, set, pods)
		got[set] = figures{add, del}
		fmt.Fprintf(&report, "%-9s network setup p50 %.1f p99 %.1f max %.1f; teardown p50 %.1f p99 %.1f; all pods up in %.1f s, all removed in %.1f s\n",
			set, ms(quantile(add, 0.5)), ms(quantile(add, 0.99)), ms(quantile(add, 1)), ms(quantile(del, 0.5)), ms(quantile(del, 0.99)), up.Seconds(), down.Seconds())
	}
	o, r := got["ours"], got["reference"]
	fmt.Fprintf(&report, "ours ÷ reference: setup p50 %.2f p99 %.2f; teardown p50 %.2f p99 %.2f\n",
		ms(quantile(o.add, 0.5))/ms(quantile(r.add, 0.5)), ms(quantile(o.add, 0.99))/ms(quantile(r.add, 0.99)),
		ms(quantile(o.del, 0.5))/ms(quantile(r.del, 0.5)), ms(quantile(o.del, 0.99))/ms(quantile(r.del, 0.99)))
	t.Logf("cri churn bench:\n%s", report.String())
	if out := os.Getenv("DNET_CRI_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(report.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// churn runs the pods on a node of set's plugins and returns each pod's
// network setup and teardown, and the wall time of all runp and of all
// stopp and rmp.
func churn(t *testing.T, set string, pods int) (add, del []time.Duration, up, down time.Duration) {
	h := newClientHost(t, "cri churn "+set, "containerd", "ctr", "runc")
	conf := renderKubernetes(t, podCIDR)
	if set == "reference" {
		for _, p := range []string{"bridge", "host-local", "portmap"} {
			h.addReferencePlugin(p)
		}
		conf = []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"dockernet","plugins":[
  {"type":"bridge","bridge":"cni0","isGateway":true,"isDefaultGateway":true,"ipMasq":true,"hairpinMode":true,
   "ipam":{"type":"host-local","ranges":[[{"subnet":%q}]]}},
  {"type":"portmap","capabilities":{"portMappings":true},"snat":true}]}`, podCIDR))
	}
	writeFile(t, filepath.Join(h.netD, "10-dockernet.conflist"), string(conf))
	for _, p := range []string{"bridge", "portmap"} {
		wrapTimed(t, filepath.Join(h.cniBin, p))
	}
	c := h.startContainerd("k8s.io")
	crictl := testenv.Built(t, "CRICTL", ".tools/bin/crictl", "")
	cfg := filepath.Join(c.dir, "crictl-churn.yaml")
	writeFile(t, cfg, fmt.Sprintf("runtime-endpoint: unix://%[1]s\nimage-endpoint: unix://%[1]s\ntimeout: 300\n", c.sock))
	cri := func(args ...string) (string, error) {
		out, err := h.run(append([]string{crictl, "--config", cfg}, args...)...)
		return strings.TrimSpace(out), err
	}
	confs := make([]string, pods)
	for i := range confs {
		p := podSandbox{Name: fmt.Sprintf("churn%d", i)}
		if i%10 == 0 {
			p.Ports = []criPort{{Protocol: criTCP, ContainerPort: helloPort, HostPort: 9000 + i}}
		}
		confs[i] = p.write(t, c.dir)
	}
	ids := make([]string, pods)
	all := func(what string, do func(i int) error) time.Duration {
		start := time.Now()
		errs := make([]error, pods)
		var wg sync.WaitGroup
		for i := range pods {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = do(i) }()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("%s: %s of pod %d: %v", set, what, i, err)
			}
		}
		return time.Since(start)
	}
	up = all("runp", func(i int) (err error) { ids[i], err = cri("runp", confs[i]); return err })
	down = all("stopp", func(i int) error { _, err := cri("stopp", ids[i]); return err })
	down += all("rmp", func(i int) error { _, err := cri("rmp", ids[i]); return err })
	add, del = chainTimes(t, filepath.Join(h.varLib, "timed.log"))
	if len(add) != pods {
		t.Fatalf("%s: %d pods' network setup logged, want %d", set, len(add), pods)
	}
	return add, del, up, down
}

// wrapTimed moves plugin aside and puts in its place a script that runs
// it and logs, to /var/lib/cni/timed.log as the node sees it, the
// command, the container, the plugin, its start and its end (seconds
// since boot, to the hundredth). The clock is read from /proc/uptime by
// the shell's own read: a `date` on each side of the plugin cost two
// more processes per exec (12 ms of the 15 ms a wrapped /bin/true took
// here), on both sides, inside the span timed and on the CPUs the
// burst of pods shares; a hundredth of a second is fine grain for spans
// of seconds.
func wrapTimed(t *testing.T, plugin string) {
	t.Helper()
	if err := os.Rename(plugin, plugin+".real"); err != nil {
		t.Fatal(err)
	}
	script := `#!/bin/sh
read s _ < /proc/uptime
"$0.real"
rc=$?
read e _ < /proc/uptime
echo "$CNI_COMMAND $CNI_CONTAINERID ${0##*/} $s $e $rc" >> /var/lib/cni/timed.log
exit $rc
`
	if err := os.WriteFile(plugin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// chainTimes reads the log: per container, the chain's first ADD (bridge
// start to portmap end) and first DEL (portmap start to bridge end).
func chainTimes(t *testing.T, log string) (add, del []time.Duration) {
	data, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	type span struct{ start, end int64 }
	spans := map[string]map[string][]span{} // command+id -> plugin -> spans
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 6 || f[5] != "0" {
			continue
		}
		s, e := uptimeNS(f[3]), uptimeNS(f[4])
		key := f[0] + " " + f[1]
		if spans[key] == nil {
			spans[key] = map[string][]span{}
		}
		spans[key][f[2]] = append(spans[key][f[2]], span{s, e})
	}
	for key, byPlugin := range spans {
		b, p := byPlugin["bridge"], byPlugin["portmap"]
		if len(b) == 0 || len(p) == 0 {
			continue
		}
		sort.Slice(b, func(i, j int) bool { return b[i].start < b[j].start })
		sort.Slice(p, func(i, j int) bool { return p[i].start < p[j].start })
		switch strings.Fields(key)[0] {
		case "ADD":
			add = append(add, time.Duration(p[0].end-b[0].start))
		case "DEL":
			del = append(del, time.Duration(b[0].end-p[0].start))
		}
	}
	return add, del
}

// uptimeNS reads a /proc/uptime figure (seconds, two decimals) in ns.
func uptimeNS(s string) int64 {
	f, _ := strconv.ParseFloat(s, 64)
	return int64(math.Round(f*100)) * int64(10*time.Millisecond)
}

// quantile is the q-quantile of ds (nearest rank); 1 is the maximum.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(q*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}
