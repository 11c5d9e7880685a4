package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/dockernet/cni-plugins/plugins/pkg/timeline"
)

// The ADD timeline (bench -timeline N): N chain ADDs, each followed by
// its DEL, on an empty host, with every plugin process appending its
// phases to one file (plugins/pkg/timeline) and the runtime's side (this
// process, playing libcni's caller) appending when it started each
// plugin and when it reaped it. Lined up by pid, they give each phase's
// median: the process start before the plugin's first line of Go, its
// package inits, each step of the command, and the exit. The reference
// plugins have no marks inside: their rows are start to reaped only.

// timedExec is libcni's plugin exec with the caller's two marks.
type timedExec struct {
	path string // the timeline file
}

func (e *timedExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, pluginPath)
	cmd.Env, cmd.Stdin = environ, strings.NewReader(string(stdin))
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := timeline.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	err := cmd.Wait()
	reaped := timeline.Now()
	_ = timeline.Append(e.path, timeline.Line{Plugin: "caller:" + filepath.Base(pluginPath), PID: cmd.Process.Pid, Command: envValue(environ, "CNI_COMMAND"),
		Events: []timeline.Event{{Phase: "exec", T: start}, {Phase: "reaped", T: reaped}}})
	if err != nil {
		return []byte(stdout.String()), fmt.Errorf("%s: %v: %s %s", pluginPath, err, stdout.String(), stderr.String())
	}
	return []byte(stdout.String()), nil
}

func (e *timedExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

func (e *timedExec) Decode(data []byte) (version.PluginInfo, error) {
	return (&version.PluginDecoder{}).Decode(data)
}

func envValue(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if s, ok := strings.CutPrefix(kv, key+"="); ok {
			v = s
		}
	}
	return v
}

// runTimeline measures n chain ADDs (and their DELs) of each variant,
// on a host already holding fill containers (4 mappings each, added by
// workers[variant] at a time), then of the floor (test/bench/floor, in
// dir floorDir) alone, and returns the timeline tables.
func runTimeline(variants []variant, floorDir string, n, fill int, workers map[string]int) (string, error) {
	fillBin := ""
	for _, v := range variants {
		if strings.HasPrefix(v.name, "ours") && fillBin == "" {
			fillBin = v.bin
		}
	}
	if floorDir != "" && (fill == 0 || fillBin != "") {
		variants = append(variants, variant{name: "floor", bin: floorDir, backend: "nftables"})
	}
	var b strings.Builder
	host := "on an empty host"
	if fill > 0 {
		host = fmt.Sprintf("with %d containers present (4 mappings each)", fill)
	}
	fmt.Fprintf(&b, "## The ADD and DEL timeline: median of %d chain ADDs, each followed by its DEL, %s (ms)\n\n", n, host)
	b.WriteString("`floor` is test/bench/floor: the same kernel objects as a bridge ADD (bridge, veth pair into the netns, address, route, links up) through netlink in one small Go process, and nothing else.\n\n")
	b.WriteString("Each row is one phase of one plugin process, in order; `start` is the exec to the plugin's first Go code (the kernel's exec, the Go runtime, the packages initialised before the timeline's), `inits` the rest of the package inits up to main, `exit` the last mark to the caller's reap (result printed, process gone). host-local runs inside bridge's ADD, beside the link work: its `at` column is when it started after bridge's exec. bridge's DEL deletes the links, removes the netfilter state and releases the addresses at once: each of those rows ends when its part finished, in the order they finished.\n\n")
	for _, v := range variants {
		file, err := os.CreateTemp("", "dnet-timeline-*.jsonl")
		if err != nil {
			return "", err
		}
		file.Close()
		defer os.Remove(file.Name())
		w, err := newWorld(v, "dntl"+strings.Split(v.name, "-")[0][:1]+v.backend[:1])
		if err != nil {
			return "", err
		}
		if fill > 0 {
			if v.name == "floor" { // the floor's host is filled by our plugins, on the same bridge
				w.cni = libcni.NewCNIConfigWithCacheDir([]string{fillBin}, filepath.Join(w.dir, "cache"), nil)
			}
			next := 20000
			if err := w.fill(fill, workers[v.name], func() int { next++; return next }); err != nil {
				w.destroy()
				return "", err
			}
			settle()
		}
		if v.name == "floor" {
			if w.list, err = libcni.ConfListFromBytes([]byte(`{"cniVersion":"1.0.0","name":"floor","plugins":[{"type":"floor","bridge":"docker0"}]}`)); err != nil {
				return "", err
			}
		}
		te := &timedExec{path: file.Name()}
		w.cni = libcni.NewCNIConfigWithCacheDir([]string{v.bin}, filepath.Join(w.dir, "cache"), te)
		os.Setenv(timeline.Env, file.Name())
		var chains, dels []time.Duration
		for i := 0; i < n; i++ {
			c, err := w.newContainer([]mapping{{HostPort: 8080, ContainerPort: 5000, Protocol: "tcp"}})
			if err != nil {
				return "", err
			}
			d, err := w.add(c)
			if err == nil {
				var dd time.Duration
				dd, err = w.del(c)
				dels = append(dels, dd)
			}
			c.release()
			if err != nil {
				w.destroy()
				return "", err
			}
			chains = append(chains, d)
		}
		os.Unsetenv(timeline.Env)
		w.destroy()
		for _, cmd := range []string{"ADD", "DEL"} {
			rows, err := timelineRows(file.Name(), cmd)
			if err != nil {
				return "", err
			}
			title := fmt.Sprintf("%s (chain ADD %.1f ms median)", v.name, ms(median(chains)))
			if cmd == "DEL" {
				title = fmt.Sprintf("%s, the DELs (chain DEL %.1f ms median)", v.name, ms(median(dels)))
			}
			fmt.Fprintf(&b, "### %s\n\n| plugin | phase | ms | at |\n| --- | --- | --- | --- |\n", title)
			for _, r := range rows {
				fmt.Fprintf(&b, "| %s | %s | %.2f | %s |\n", r.plugin, r.phase, r.ms, r.at)
			}
			b.WriteString("\n")
		}
	}
	return b.String(), nil
}

type timelineRow struct {
	plugin, phase, at string
	ms                float64
}

// timelineRows lines up the file's lines of command (ADD or DEL) by pid
// and gives each phase's median duration, in the order the phases first
// appear, the plugins in the order the chain runs them.
func timelineRows(path, command string) ([]timelineRow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	byPID := map[int][]timeline.Line{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l timeline.Line
		if err := json.Unmarshal(sc.Bytes(), &l); err == nil && l.Command == command {
			byPID[l.PID] = append(byPID[l.PID], l)
		}
	}
	var order []phaseKey
	durs := map[phaseKey][]time.Duration{}
	var ipamAt []time.Duration
	var bridgeExec, hostLocalStart []int64
	add := func(k phaseKey, d int64) {
		if _, ok := durs[k]; !ok {
			order = append(order, k)
		}
		durs[k] = append(durs[k], time.Duration(d))
	}
	for _, lines := range byPID {
		var caller, own *timeline.Line
		for i := range lines {
			if strings.HasPrefix(lines[i].Plugin, "caller:") {
				caller = &lines[i]
			} else {
				own = &lines[i]
			}
		}
		switch {
		case caller != nil && own != nil:
			plugin := own.Plugin
			prev := caller.Events[0].T
			for _, e := range own.Events {
				phase := e.Phase
				switch phase {
				case "init":
					phase = "start"
				case "main":
					phase = "inits"
				}
				add(phaseKey{plugin, phase}, e.T-prev)
				prev = e.T
			}
			add(phaseKey{plugin, "exit → reaped"}, caller.Events[1].T-prev)
			add(phaseKey{plugin, "total"}, caller.Events[1].T-caller.Events[0].T)
			if plugin == "bridge" {
				bridgeExec = append(bridgeExec, caller.Events[0].T)
			}
		case caller != nil:
			add(phaseKey{strings.TrimPrefix(caller.Plugin, "caller:"), "total (no marks inside)"}, caller.Events[1].T-caller.Events[0].T)
		case own != nil && own.Plugin == "host-local":
			// Run by bridge: no caller marks; from its first mark on.
			prev := own.Events[0].T
			hostLocalStart = append(hostLocalStart, prev)
			for _, e := range own.Events[1:] {
				add(phaseKey{"host-local (in bridge)", e.Phase}, e.T-prev)
				prev = e.T
			}
		}
	}
	// host-local's start after its bridge's exec: each bridge exec with the
	// first host-local start after it.
	sort.Slice(bridgeExec, func(i, j int) bool { return bridgeExec[i] < bridgeExec[j] })
	sort.Slice(hostLocalStart, func(i, j int) bool { return hostLocalStart[i] < hostLocalStart[j] })
	for i, j := 0, 0; i < len(bridgeExec) && j < len(hostLocalStart); i++ {
		for j < len(hostLocalStart) && hostLocalStart[j] < bridgeExec[i] {
			j++
		}
		if j < len(hostLocalStart) {
			ipamAt = append(ipamAt, time.Duration(hostLocalStart[j]-bridgeExec[i]))
		}
	}
	// Plugins in chain order; phases as they first appeared.
	rank := map[string]int{"bridge": 0, "host-local (in bridge)": 1, "portmap": 2}
	if command == "DEL" {
		rank = map[string]int{"portmap": 0, "bridge": 1, "host-local (in bridge)": 2}
	}
	sort.SliceStable(order, func(i, j int) bool { return rank[order[i].plugin] < rank[order[j].plugin] })
	var rows []timelineRow
	for _, k := range order {
		r := timelineRow{plugin: k.plugin, phase: k.phase, ms: ms(median(durs[k]))}
		if k.plugin == "host-local (in bridge)" && len(ipamAt) > 0 && k.phase == firstPhase(order, k.plugin) {
			r.at = fmt.Sprintf("%.2f", ms(median(ipamAt)))
		}
		rows = append(rows, r)
	}
	return rows, nil
}

type phaseKey struct{ plugin, phase string }

func firstPhase(order []phaseKey, plugin string) string {
	for _, k := range order {
		if k.plugin == plugin {
			return k.phase
		}
	}
	return ""
}
