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
	runs                     int
	parallelN                int
	add1, del1, add10, del10 map[string][]time.Duration
	levels                   []int
	scaleAdd, scaleDel       map[int]map[string][]time.Duration
	connLevels               []int
	conn                     map[int]map[string]connResult
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
	runs := flag.Int("runs", 30, "runs per latency figure")
	levelsFlag := flag.String("levels", "0,100,500,1000", "containers present for the scaling latency")
	connFlag := flag.String("conn-levels", "0,250,1000", "containers present (4 mappings each) for the connection rate")
	parallelN := flag.Int("parallel", 100, "containers added at once")
	connDur := flag.Duration("conn-time", 1500*time.Millisecond, "length of one connection-rate round (3 rounds per figure)")
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
	r := &results{runs: *runs, parallelN: *parallelN, levels: ints(*levelsFlag), connLevels: ints(*connFlag), started: time.Now()}
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
		"chain ADD median latency", "new connections/s through one host port (relative)"); err != nil {
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

	// 2. Fresh worlds for everything else.
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

	r.scaleAdd, r.scaleDel = map[int]map[string][]time.Duration{}, map[int]map[string][]time.Duration{}
	r.conn = map[int]map[string]connResult{}
	r.tputDirect, r.tputHostPort = map[string]float64{}, map[string]float64{}
	ports := map[string]int{}
	for _, w := range worlds {
		ports[w.v.name] = 20000
	}
	for _, level := range union(r.levels, r.connLevels) {
		// The worlds are independent namespaces: fill them all at once. An
		// iptables variant serialises on its lock anyway, so one worker each.
		progress("filling every variant to %d containers", level)
		errs := make(chan error, len(worlds))
		for _, w := range worlds {
			workers := 2
			if w.v.backend == "iptables" {
				workers = 1
			}
			next := ports[w.v.name]
			ports[w.v.name] += 4 * (level - len(w.fillers))
			go func(w *world, workers, next int) {
				errs <- w.fill(level, workers, func() int { next++; return next })
			}(w, workers, next)
		}
		for range worlds {
			if err := <-errs; err != nil {
				return err
			}
		}
		if contains(r.levels, level) {
			progress("chain latency with %d containers present, 4 mappings, %d runs", level, r.runs)
			adds, dels, err := latency(worlds, 4, r.runs)
			if err != nil {
				return err
			}
			r.scaleAdd[level], r.scaleDel[level] = adds, dels
		}
		if contains(r.connLevels, level) {
			progress("connection rate with %d mappings", level*4+1)
			res, err := connRound(worlds, hello, connDur, level == 0, r)
			if err != nil {
				return err
			}
			r.conn[level*4+1] = res
		}
	}
	return nil
}

// connRound adds a server container last (the worst place for a linear
// rule list), measures new connections through its host port in three
// interleaved rounds, and with throughput set also bulk TCP through the
// host port and directly.
func connRound(worlds []*world, hello string, dur time.Duration, withThroughput bool, r *results) (map[string]connResult, error) {
	servers := map[string]*container{}
	stops := map[string]func(){}
	defer func() {
		for name, c := range servers {
			stops[name]()
			for _, w := range worlds {
				if w.v.name == name {
					_, _ = w.del(c)
				}
			}
			c.release()
		}
	}()
	for _, w := range worlds {
		c, err := w.newContainer([]mapping{{HostPort: 8000, ContainerPort: 5000, Protocol: "tcp"}})
		if err != nil {
			return nil, err
		}
		if _, err := w.add(c); err != nil {
			c.release()
			return nil, fmt.Errorf("%s: server ADD: %w", w.v.name, err)
		}
		stop, err := startServer(hello, c, 5000)
		if err != nil {
			return nil, err
		}
		servers[w.v.name], stops[w.v.name] = c, stop
		if err := waitListening(w, "192.0.2.1:8000"); err != nil {
			return nil, err
		}
	}
	out := map[string]connResult{}
	for round := 0; round < 3; round++ {
		for _, w := range worlds {
			res := connRate(w, "192.0.2.1:8000", dur, runtime.NumCPU())
			acc := out[w.v.name]
			acc.lat = append(acc.lat, res.lat...)
			acc.failed += res.failed
			acc.elapsed += res.elapsed
			acc.rate = float64(len(acc.lat)) / acc.elapsed.Seconds()
			out[w.v.name] = acc
		}
	}
	if withThroughput {
		// Alternate direct and host-port runs; a single sample is mostly noise.
		direct, hostPort := map[string][]float64{}, map[string][]float64{}
		for round := 0; round < 3; round++ {
			for _, w := range worlds {
				d, err := throughput(w, servers[w.v.name].ip+":5000", time.Second)
				if err != nil {
					return nil, err
				}
				h, err := throughput(w, "192.0.2.1:8000", time.Second)
				if err != nil {
					return nil, err
				}
				direct[w.v.name] = append(direct[w.v.name], d)
				hostPort[w.v.name] = append(hostPort[w.v.name], h)
			}
		}
		for name := range direct {
			r.tputDirect[name], r.tputHostPort[name] = medianF(direct[name]), medianF(hostPort[name])
		}
	}
	return out, nil
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
