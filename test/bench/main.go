// Command bench runs the same workloads against our plugins and the
// reference plugins (containernetworking/plugins), each with its nftables
// and iptables backend, interleaved in one run, every variant in a private
// host netns of its own. It prints a markdown table and writes a PNG of the
// scaling curves. `make bench` builds everything and runs it.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	ours := flag.String("ours", "bin", "directory with our plugins")
	ref := flag.String("ref", "", "directory with the reference plugins v1.10.0")
	hello := flag.String("hello", "bin/hello", "the hello binary (sink server)")
	out := flag.String("out", "bench-results", "directory for results.md and scaling.png")
	runs := flag.Int("runs", 30, "runs per latency figure on an empty host")
	scaleRuns := flag.Int("scale-runs", 15, "runs per latency figure with containers present")
	levelsFlag := flag.String("levels", "0,100,500,1000", "containers present for the scaling latency")
	connFlag := flag.String("conn-levels", "0,250,1000", "containers present (4 mappings each) for the connection rate")
	parallelN := flag.Int("parallel", 100, "containers added at once")
	connDur := flag.Duration("conn-time", 250*time.Millisecond, "length of one connection-rate round")
	connRounds := flag.Int("conn-rounds", 9, "rounds per connection-rate figure, alternating host port and direct; the median round counts")
	workers := flag.String("fill-workers", "ours-nftables=4,ours-iptables=4,ref-nftables=5,ref-iptables=2",
		"parallel ADDs while filling, per variant: each variant's fastest fill (test/bench/results/README.md)")
	pluginRuns := flag.Int("plugin-runs", 3, "runs per plugin in the per-plugin breakdown")
	only := flag.String("variants", "", "comma-separated subset of variants to run (default: all four)")
	flag.IntVar(&allowlist, "allowlist", 0, "give the network's published ports a source allowlist of this many entries (ours only; the client is among them)")
	flag.BoolVar(&fillMasq, "fill-masq", false, "the containers present masquerade outbound too, like the measured chain (a far longer fill for the reference iptables)")
	readme := flag.String("readme", "", "measure nothing: copy the targets table of -out's results.md into this README")
	timelineRuns := flag.Int("timeline", 0, "measure only the ADD timeline, phase by phase, over this many chain ADDs per variant, into -out's timeline.md (timeline-<fill>.md with -timeline-fill)")
	floorDir := flag.String("floor", "", "with -timeline: the directory holding the floor program (test/bench/floor), timed the same way")
	timelineFill := flag.Int("timeline-fill", 0, "with -timeline: containers (4 mappings each) present on the host before the measured ADDs")
	flag.Parse()
	if *readme != "" {
		if err := publishReadme(filepath.Join(*out, "results.md"), *readme); err != nil {
			fail(err.Error())
		}
		return
	}
	if os.Geteuid() != 0 {
		fail("bench needs root (network namespaces, netfilter)")
	}
	if *ref == "" {
		fail("-ref is required: the directory where `make bench` installed the reference plugins")
	}
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	variants := []variant{
		{"ours-nftables", abs(*ours), "nftables"},
		{"ours-iptables", abs(*ours), "iptables"},
		{"ref-nftables", abs(*ref), "nftables"},
		{"ref-iptables", abs(*ref), "iptables"},
	}
	if *only != "" {
		var keep []variant
		for _, v := range variants {
			if strings.Contains(","+*only+",", ","+v.name+",") {
				keep = append(keep, v)
			}
		}
		variants = keep
	}
	if *timelineRuns > 0 {
		floor := *floorDir
		if floor != "" {
			floor = abs(floor)
		}
		md, err := runTimeline(variants, floor, *timelineRuns, *timelineFill, workerMap(*workers))
		if err != nil {
			fail(err.Error())
		}
		fmt.Print(md)
		if err := os.MkdirAll(*out, 0o755); err != nil {
			fail(err.Error())
		}
		name := "timeline.md"
		if *timelineFill > 0 {
			name = fmt.Sprintf("timeline-%d.md", *timelineFill)
		}
		if err := os.WriteFile(filepath.Join(*out, name), []byte(md), 0o644); err != nil {
			fail(err.Error())
		}
		return
	}
	r := newResults(options{runs: *runs, scaleRuns: *scaleRuns, parallelN: *parallelN, levels: ints(*levelsFlag), connLevels: ints(*connFlag),
		connRounds: *connRounds, connDur: *connDur, fillWorkers: workerMap(*workers), pluginRuns: *pluginRuns}, variants)
	if err := run(r, variants, abs(*hello)); err != nil {
		fail(err.Error())
	}
	r.elapsed, r.settled = time.Since(r.started), settled
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fail(err.Error())
	}
	md := report(r, variants)
	fmt.Print(md)
	if err := os.WriteFile(filepath.Join(*out, "results.md"), []byte(md), 0o644); err != nil {
		fail(err.Error())
	}
	left, right := curves(r, variants)
	if err := writePlot(filepath.Join(*out, "scaling.png"), left, right,
		"chain ADD median latency", "new connections/s via one host port"); err != nil {
		fail(err.Error())
	}
	fmt.Printf("\nwrote %s and %s\n", filepath.Join(*out, "results.md"), filepath.Join(*out, "scaling.png"))
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "bench:", msg)
	os.Exit(1)
}

func workerMap(s string) map[string]int {
	out := map[string]int{}
	for _, kv := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				out[strings.TrimSpace(k)] = n
			}
		}
	}
	return out
}

func ints(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
			out = append(out, n)
		}
	}
	return out
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run(r *results, variants []variant, hello string) error {
	tag := fmt.Sprintf("dnb%d", os.Getpid()%100000)
	var worlds []*world
	defer func() {
		for _, w := range worlds {
			w.destroy()
		}
	}()
	// 1. Chain latency on an empty host, the variants interleaved run by run.
	for i, v := range variants {
		w, err := newWorld(v, fmt.Sprintf("%se%d", tag, i))
		if err != nil {
			return err
		}
		worlds = append(worlds, w)
	}
	progress("chain latency, 1 mapping, %d runs", r.opts.runs)
	add1, del1, err := latency(worlds, 1, r.opts.runs)
	if err != nil {
		return err
	}
	progress("chain latency, 10 mappings, %d runs", r.opts.runs)
	add10, del10, err := latency(worlds, 10, r.opts.runs)
	if err != nil {
		return err
	}
	for _, v := range variants {
		r.variants[v.name].empty = emptyLatency{add1[v.name], del1[v.name], add10[v.name], del10[v.name]}
	}
	progress("nft transaction: nft -f process vs netlink")
	if r.nft, err = nftTransactions(worlds[0], r.opts.runs); err != nil {
		return err
	}
	for _, w := range worlds {
		w.destroy()
	}
	worlds = nil
	settle()

	// 2. Everything with containers present, one variant at a time.
	return scale(r, variants, tag, hello)
}

// scale measures each variant on a host of its own, filled to each level in
// turn: a node runs one CNI, and containers of the other variants would
// charge their kernel work (IPv6 multicast floods, 4x the netdevs) to the
// one being measured. The variants therefore follow one another here;
// only the empty-host figures above are interleaved.
func scale(r *results, variants []variant, tag, hello string) error {
	for i, v := range variants {
		w, err := newWorld(v, fmt.Sprintf("%sn%d", tag, i))
		if err != nil {
			return err
		}
		err = scaleOne(r, w, hello)
		w.destroy()
		if err != nil {
			return err
		}
		settle() // the kernel tears the namespaces down in the background
	}
	return nil
}

func scaleOne(r *results, w *world, hello string) error {
	name, opts, vr := w.v.name, r.opts, r.variants[w.v.name]
	// An empty host of the same variant, measured in the same rounds as the
	// filled one: the growth with N is their ratio, so a slow minute of the
	// machine (this is a VM) hits both sides of it alike.
	twin, err := newWorld(w.v, w.name+"t")
	if err != nil {
		return err
	}
	defer twin.destroy()
	twin.twin = true
	next := 20000
	nextPort := func() int { next++; return next }
	levels := slices.Concat(opts.levels, opts.connLevels)
	slices.Sort(levels)
	for _, level := range slices.Compact(levels) {
		t0 := time.Now()
		need := level - len(w.fillers)
		if len(w.fillers) == 0 && level >= opts.parallelN && opts.parallelN > 0 {
			// The first containers all at once: the parallel-ADD workload.
			if vr.parallel, err = w.fillParallel(opts.parallelN, nextPort); err != nil {
				return err
			}
			progress("%s: %d chain ADDs at once in %s, %d failed", name, opts.parallelN, vr.parallel.wall.Round(time.Millisecond), vr.parallel.failures)
		}
		if err := w.fill(level, opts.fillWorkers[name], nextPort); err != nil {
			return err
		}
		vr.fillTime += time.Since(t0)
		progress("%s: filled to %d containers (%d ADDs in %s)", name, level, need, time.Since(t0).Round(time.Second))
		settle()
		if slices.Contains(opts.levels, level) {
			if err := measureLatency(vr.scale[level], w, twin, level, opts); err != nil {
				return err
			}
		}
		if slices.Contains(opts.connLevels, level) {
			var peer *world // the empty twin joins the rounds at the top level
			if level > 0 && level == opts.connLevels[len(opts.connLevels)-1] {
				peer = twin
			}
			f, err := connRound(w, peer, hello, level == 0, opts.connRounds, opts.connDur)
			if err != nil {
				return err
			}
			*vr.conn[mappingsAt(level)] = f.connLevel
			if level == 0 {
				vr.tput = f.tput
			}
		}
		progress("%s: measured at %d containers", name, level)
	}
	return nil
}

// measureLatency fills sl at one level: the chain's latency (against the
// empty twin at the top level), the kernel floor and, at the first and
// top levels, each plugin alone.
func measureLatency(sl *scaleLevel, w, twin *world, level int, opts options) error {
	top := level == opts.levels[len(opts.levels)-1]
	pair := []*world{w}
	if top && level > 0 {
		pair = append(pair, twin)
	}
	adds, dels, err := latency(pair, 4, opts.scaleRuns)
	if err != nil {
		return err
	}
	sl.add, sl.del = adds[w.label()], dels[w.label()]
	sl.twinAdd, sl.twinDel = adds[twin.label()], dels[twin.label()]
	if sl.kernelAdd, sl.kernelDel, err = kernelFloor(w, 10); err != nil {
		return err
	}
	if level == 0 || top {
		if sl.plugins, err = pluginTimes(w, opts.pluginRuns); err != nil {
			return err
		}
	}
	return nil
}

// connFigures is what one connection round measures on a host.
type connFigures struct {
	connLevel
	tput tputResult // bulk TCP, when measured
}

// connRound adds a server container last (the worst place for a linear
// rule list), measures new connections through its host port and straight
// to the container, alternating, and with throughput set also bulk TCP
// through the host port and directly. With a twin, the oldest container's
// port and a server behind the twin's only mapping (M=1) join the rounds.
func connRound(w, twin *world, hello string, withThroughput bool, rounds int, dur time.Duration) (f connFigures, err error) {
	// Direct rounds use a port of their own: with the same server port a
	// direct connection's conntrack entry (kept 10 s after close) has the
	// reply tuple a host-port connection from the same client port needs,
	// the DNAT clashes and the SYN is dropped, which looked like a
	// slow host port.
	c, stop, err := serve(w, hello, 5000, 5001)
	if err != nil {
		return f, err
	}
	defer stop()
	// The oldest container's first port as well, same host, same moment:
	// the number of mappings then differs in rule position only, not in
	// the number of containers the kernel carries. Only at the top level,
	// where the twin joins too: that is the level the targets are read at.
	var oldestAddr string
	if len(w.fillers) > 0 && twin != nil {
		first := w.fillers[0]
		stop, err := startServer(hello, first, first.maps[0].ContainerPort)
		if err != nil {
			return f, err
		}
		defer stop()
		oldestAddr = fmt.Sprintf("192.0.2.1:%d", first.maps[0].HostPort)
		if err := waitListening(w, oldestAddr); err != nil {
			return f, err
		}
	}
	// M=1 at the same moment: the empty twin host's only mapping.
	if twin != nil {
		_, stop, err := serve(twin, hello, 5000)
		if err != nil {
			return f, err
		}
		defer stop()
	}
	settleBrief()
	// Short rounds, alternating, and the median round: a burst of
	// unrelated kernel work spoils one round, not the figure.
	accumulate := func(acc *connResult, res connResult) {
		acc.lat = append(acc.lat, res.lat...)
		acc.failed += res.failed
		acc.elapsed += res.elapsed
		acc.rounds = append(acc.rounds, res.rate)
		acc.rate = medianF(acc.rounds)
	}
	type target struct {
		acc  *connResult
		w    *world
		addr string
	}
	targets := []target{{&f.viaPort, w, "192.0.2.1:8000"}, {&f.direct, w, c.ip + ":5001"}}
	if oldestAddr != "" {
		targets = append(targets, target{&f.oldest, w, oldestAddr})
	}
	if twin != nil {
		targets = append(targets, target{&f.twin, twin, "192.0.2.1:8000"})
	}
	// Each round starts with the next target: the first of a round tends
	// to be slower, and a fixed order would charge that to one target.
	for round := 0; round < rounds; round++ {
		for i := range targets {
			t := targets[(round+i)%len(targets)]
			accumulate(t.acc, connRate(t.w, t.addr, dur, runtime.NumCPU()))
		}
	}
	progress("%s: conn/s per round via host port %.0f, direct %.0f, oldest container's port %.0f, twin host (M=1) %.0f",
		w.v.name, f.viaPort.rounds, f.direct.rounds, f.oldest.rounds, f.twin.rounds)
	if withThroughput {
		// Alternate direct and host-port runs, and compare within each
		// pair: adjacent runs vary less than distant ones.
		var ds, hs, ratios []float64
		for round := 0; round < tputPairs; round++ {
			d, err := throughput(w, c.ip+":5001", tputDur)
			if err != nil {
				return f, err
			}
			h, err := throughput(w, "192.0.2.1:8000", tputDur)
			if err != nil {
				return f, err
			}
			ds, hs, ratios = append(ds, d), append(hs, h), append(ratios, h/d)
		}
		f.tput = tputResult{direct: medianF(ds), hostPort: medianF(hs), ratio: medianF(ratios)}
	}
	return f, nil
}

// serve adds a container with host port 8000 mapped to its port 5000,
// runs the sink server on each of ports inside it, and waits until the
// host port answers. stop undoes all of it.
func serve(w *world, hello string, ports ...int) (c *container, stop func(), err error) {
	var undo []func()
	stop = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	if c, err = w.newContainer([]mapping{{HostPort: 8000, ContainerPort: 5000, Protocol: "tcp"}}); err != nil {
		return nil, nil, err
	}
	undo = append(undo, c.release)
	if _, err = w.add(c); err != nil {
		return nil, nil, fmt.Errorf("%s: server ADD: %w", w.label(), err)
	}
	undo = append(undo, func() { _, _ = w.del(c) })
	for _, port := range ports {
		kill, err := startServer(hello, c, port)
		if err != nil {
			return nil, nil, err
		}
		undo = append(undo, kill)
	}
	if err = waitListening(w, "192.0.2.1:8000"); err != nil {
		return nil, nil, err
	}
	return c, stop, nil
}

// tputDur is one bulk-TCP run: at several Gbit/s the socket buffers the
// writer counts but the reader has not yet seen are under 1% of it.
const (
	tputDur   = 300 * time.Millisecond
	tputPairs = 6
)

// settle waits until the CPUs are idle for 0.8 s in a row: creating or
// deleting hundreds of veths and namespaces leaves the kernel deferred work
// (netns teardown, RCU callbacks, link events) that comes in bursts and
// would otherwise be charged to the next measurement.
func settle() { settleFor(2) }

// settleBrief is settle after a step that leaves little deferred work.
func settleBrief() { settleFor(1) }

// settled is the run's total wait for idle CPUs, reported with its length.
var settled time.Duration

// settleWindow is one sample of CPU idleness; settle wants two in a row.
const settleWindow = 400 * time.Millisecond

func settleFor(windows int) {
	start := time.Now()
	defer func() { settled += time.Since(start) }()
	deadline := time.Now().Add(45 * time.Second)
	quiet := 0
	for time.Now().Before(deadline) {
		if cpuIdle(settleWindow) > 0.9 {
			if quiet++; quiet == windows {
				return
			}
		} else {
			quiet = 0
		}
	}
	progress("the CPUs did not settle within 45 s; measuring anyway")
}

// cpuIdle is the share of all CPUs over d that did no work of this
// machine's, from /proc/stat.
func cpuIdle(d time.Duration) float64 {
	read := func() (idle, total uint64) {
		data, err := os.ReadFile("/proc/stat")
		if err != nil {
			return 0, 0
		}
		fields := strings.Fields(strings.SplitN(string(data), "\n", 2)[0])[1:]
		for i, f := range fields {
			v, _ := strconv.ParseUint(f, 10, 64)
			total += v
			// idle, iowait, and steal: time the hypervisor gave to other
			// guests is no work of ours, and waiting does not end it.
			if i == 3 || i == 4 || i == 7 {
				idle += v
			}
		}
		return idle, total
	}
	i0, t0 := read()
	time.Sleep(d)
	i1, t1 := read()
	if t1 == t0 {
		return 1
	}
	return float64(i1-i0) / float64(t1-t0)
}
