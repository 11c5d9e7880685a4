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
	"strconv"
	"strings"
	"time"
)

type results struct {
	runs, scaleRuns          int
	parallelN                int
	connRounds               int
	fillWorkers              map[string]int // backend -> parallel ADDs while filling
	add1, del1, add10, del10 map[string][]time.Duration
	levels                   []int
	scaleAdd, scaleDel       map[int]map[string][]time.Duration
	connLevels               []int
	conn, connDirect         map[int]map[string]connResult
	kernelAdd, kernelDel     map[int]map[string][]time.Duration // level -> variant
	plugins                  map[int]map[string]map[string][]time.Duration // level -> variant -> plugin
	tputDirect, tputHostPort map[string]float64
	parallel                 map[string]parallelResult
	nftExec, nftNetlink      []time.Duration
	started                  time.Time
	elapsed                  time.Duration
}

func main() {
	ours := flag.String("ours", "bin", "directory with our plugins")
	ref := flag.String("ref", "", "directory with the reference plugins v1.10.0")
	hello := flag.String("hello", "bin/hello", "the hello binary (sink server)")
	out := flag.String("out", "bench-results", "directory for results.md and scaling.png")
	runs := flag.Int("runs", 30, "runs per latency figure on an empty host")
	scaleRuns := flag.Int("scale-runs", 15, "runs per latency figure with containers present (each costs seconds at N=1000 for the reference)")
	levelsFlag := flag.String("levels", "0,100,500,1000", "containers present for the scaling latency")
	connFlag := flag.String("conn-levels", "0,250,1000", "containers present (4 mappings each) for the connection rate")
	parallelN := flag.Int("parallel", 100, "containers added at once")
	connDur := flag.Duration("conn-time", time.Second, "length of one connection-rate round (3 rounds per figure)")
	connRounds := flag.Int("conn-rounds", 3, "rounds per connection-rate figure, alternating host port and direct")
	iptWorkers := flag.Int("fill-workers-iptables", 2, "parallel ADDs while filling an iptables variant")
	nftWorkers := flag.Int("fill-workers-nftables", 2, "parallel ADDs while filling an nftables variant")
	only := flag.String("variants", "", "comma-separated subset of variants to run (default: all four)")
	flag.Parse()
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
	r := &results{runs: *runs, scaleRuns: *scaleRuns, parallelN: *parallelN, levels: ints(*levelsFlag), connLevels: ints(*connFlag), started: time.Now(),
		connRounds: *connRounds, fillWorkers: map[string]int{"iptables": *iptWorkers, "nftables": *nftWorkers}}
	if err := run(r, variants, abs(*hello), *parallelN, *connDur); err != nil {
		fail(err.Error())
	}
	r.elapsed = time.Since(r.started)
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

func run(r *results, variants []variant, hello string, parallelN int, connDur time.Duration) error {
	tag := fmt.Sprintf("dnb%d", os.Getpid()%100000)
	var worlds []*world
	cleanup := func() {
		for _, w := range worlds {
			w.destroy()
		}
		worlds = nil
	}
	defer cleanup()
	makeWorlds := func(round string) error {
		for i, v := range variants {
			w, err := newWorld(v, fmt.Sprintf("%s%s%d", tag, round, i))
			if err != nil {
				return err
			}
			worlds = append(worlds, w)
		}
		return nil
	}

	// 1. Many containers at once, each variant on an empty host.
	r.parallel = map[string]parallelResult{}
	if err := makeWorlds("p"); err != nil {
		return err
	}
	for _, w := range worlds {
		progress("%d parallel ADDs: %s", parallelN, w.v.name)
		res, err := parallelAdds(w, parallelN)
		if err != nil {
			return err
		}
		r.parallel[w.v.name] = res
	}
	cleanup()
	settle()

	// 2. Fresh worlds for the empty-host latency, interleaved.
	if err := makeWorlds("s"); err != nil {
		return err
	}
	var err error
	progress("chain latency, 1 mapping, %d runs", r.runs)
	if r.add1, r.del1, err = latency(worlds, 1, r.runs); err != nil {
		return err
	}
	progress("chain latency, 10 mappings, %d runs", r.runs)
	if r.add10, r.del10, err = latency(worlds, 10, r.runs); err != nil {
		return err
	}
	progress("nft transaction: nft -f process vs netlink")
	if r.nftExec, r.nftNetlink, err = nftTransactions(worlds[0], r.runs); err != nil {
		return err
	}

	cleanup()
	if err := scale(r, variants, tag, hello, connDur); err != nil {
		return err
	}
	return nil
}

// scale measures each variant on a host of its own, filled to each level in
// turn: a node runs one CNI, and containers of the other variants would
// charge their kernel work (IPv6 multicast floods, 4x the netdevs) to the
// one being measured. The variants therefore follow one another here;
// only the empty-host figures above are interleaved.
func scale(r *results, variants []variant, tag, hello string, connDur time.Duration) error {
	r.scaleAdd, r.scaleDel = map[int]map[string][]time.Duration{}, map[int]map[string][]time.Duration{}
	r.conn, r.connDirect = map[int]map[string]connResult{}, map[int]map[string]connResult{}
	r.kernelAdd, r.kernelDel = map[int]map[string][]time.Duration{}, map[int]map[string][]time.Duration{}
	r.plugins = map[int]map[string]map[string][]time.Duration{}
	r.tputDirect, r.tputHostPort = map[string]float64{}, map[string]float64{}
	for _, l := range r.levels {
		r.scaleAdd[l], r.scaleDel[l] = map[string][]time.Duration{}, map[string][]time.Duration{}
		r.kernelAdd[l], r.kernelDel[l] = map[string][]time.Duration{}, map[string][]time.Duration{}
		r.plugins[l] = map[string]map[string][]time.Duration{}
	}
	for _, l := range r.connLevels {
		r.conn[l*4+1], r.connDirect[l*4+1] = map[string]connResult{}, map[string]connResult{}
	}
	for i, v := range variants {
		w, err := newWorld(v, fmt.Sprintf("%sn%d", tag, i))
		if err != nil {
			return err
		}
		err = scaleOne(r, w, hello, connDur)
		w.destroy()
		if err != nil {
			return err
		}
		settle() // the kernel tears the namespaces down in the background
	}
	return nil
}

func scaleOne(r *results, w *world, hello string, connDur time.Duration) error {
	name := w.v.name
	next := 20000
	for _, level := range union(r.levels, r.connLevels) {
		t0 := time.Now()
		need := level - len(w.fillers)
		if err := w.fill(level, r.fillWorkers[w.v.backend], func() int { next++; return next }); err != nil {
			return err
		}
		progress("%s: filled to %d containers (%d ADDs in %s)", name, level, need, time.Since(t0).Round(time.Second))
		settle()
		if contains(r.levels, level) {
			adds, dels, err := latency([]*world{w}, 4, r.scaleRuns)
			if err != nil {
				return err
			}
			r.scaleAdd[level][name], r.scaleDel[level][name] = adds[name], dels[name]
			if r.kernelAdd[level][name], r.kernelDel[level][name], err = kernelFloor(w, r.scaleRuns); err != nil {
				return err
			}
			if r.plugins[level][name], err = pluginTimes(w, min(r.scaleRuns, 5)); err != nil {
				return err
			}
		}
		if contains(r.connLevels, level) {
			res, direct, err := connRound(w, hello, connDur, level == 0, r)
			if err != nil {
				return err
			}
			r.conn[level*4+1][name], r.connDirect[level*4+1][name] = res, direct
		}
		progress("%s: measured at %d containers", name, level)
	}
	return nil
}

// connRound adds a server container last (the worst place for a linear
// rule list), measures new connections through its host port and straight
// to the container, alternating, and with throughput set also bulk TCP
// through the host port and directly.
func connRound(w *world, hello string, dur time.Duration, withThroughput bool, r *results) (viaPort, direct connResult, err error) {
	c, err := w.newContainer([]mapping{{HostPort: 8000, ContainerPort: 5000, Protocol: "tcp"}})
	if err != nil {
		return viaPort, direct, err
	}
	defer c.release()
	if _, err := w.add(c); err != nil {
		return viaPort, direct, fmt.Errorf("%s: server ADD: %w", w.v.name, err)
	}
	defer func() { _, _ = w.del(c) }()
	stop, err := startServer(hello, c, 5000)
	if err != nil {
		return viaPort, direct, err
	}
	defer stop()
	if err := waitListening(w, "192.0.2.1:8000"); err != nil {
		return viaPort, direct, err
	}
	settle()
	// Through the host port, and straight to the container's address: the
	// second has no DNAT at all and shows what the kernel alone costs.
	accumulate := func(acc *connResult, res connResult) {
		acc.lat = append(acc.lat, res.lat...)
		acc.failed += res.failed
		acc.elapsed += res.elapsed
		acc.rate = float64(len(acc.lat)) / acc.elapsed.Seconds()
	}
	for round := 0; round < r.connRounds; round++ {
		accumulate(&viaPort, connRate(w, "192.0.2.1:8000", dur, runtime.NumCPU()))
		accumulate(&direct, connRate(w, c.ip+":5000", dur, runtime.NumCPU()))
	}
	if withThroughput {
		// Alternate direct and host-port runs; a single sample is mostly noise.
		var ds, hs []float64
		for round := 0; round < 3; round++ {
			d, err := throughput(w, c.ip+":5000", time.Second)
			if err != nil {
				return viaPort, direct, err
			}
			h, err := throughput(w, "192.0.2.1:8000", time.Second)
			if err != nil {
				return viaPort, direct, err
			}
			ds, hs = append(ds, d), append(hs, h)
		}
		r.tputDirect[w.v.name], r.tputHostPort[w.v.name] = medianF(ds), medianF(hs)
	}
	return viaPort, direct, nil
}

func union(a, b []int) []int {
	seen := map[int]bool{}
	var out []int
	for _, v := range append(append([]int{}, a...), b...) {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	for i := range out { // small: insertion sort
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func contains(xs []int, v int) bool {
	for _, x := range xs {
		if x == v {
			return true
		}
	}
	return false
}

// settle waits until the CPUs are mostly idle again: creating hundreds of
// veths leaves the kernel deferred work (IPv6 DAD, RCU callbacks) that
// would otherwise be charged to the next measurement.
func settle() {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if cpuIdle(time.Second) > 0.9 {
			return
		}
	}
	progress("the CPUs did not settle within 60 s; measuring anyway")
}

// cpuIdle is the idle share of all CPUs over d, from /proc/stat.
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
			if i == 3 || i == 4 { // idle, iowait
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
