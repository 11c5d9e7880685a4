package main

import "time"

// options are the run's settings, from the flags.
type options struct {
	runs, scaleRuns int // runs per latency figure: empty host, containers present
	parallelN       int // containers added at once
	connRounds      int
	connDur         time.Duration
	fillWorkers     map[string]int // variant -> parallel ADDs while filling
	pluginRuns      int
	levels          []int // containers present for the latency figures
	connLevels      []int // containers present for the connection figures
}

// results is everything one run measured.
type results struct {
	opts     options
	started  time.Time
	elapsed  time.Duration
	settled  time.Duration // of elapsed, spent waiting for idle CPUs
	nft      nftResult
	variants map[string]*variantResults
}

// variantResults are one variant's figures, one field per workload.
type variantResults struct {
	empty    emptyLatency
	scale    map[int]*scaleLevel // N containers present -> latency figures
	conn     map[int]*connLevel  // M mappings installed -> connection figures
	tput     tputResult
	parallel parallelResult
	fillTime time.Duration // spent adding the containers present
}

// emptyLatency is chain ADD and DEL on an empty host.
type emptyLatency struct{ add1, del1, add10, del10 []time.Duration }

// scaleLevel is the latency workload with N containers present.
type scaleLevel struct {
	add, del             []time.Duration
	twinAdd, twinDel     []time.Duration // the empty twin host, same rounds (top level only)
	kernelAdd, kernelDel []time.Duration // veth work with no plugin
	plugins              map[string][]time.Duration
}

// connLevel is the connection workload with M mappings installed.
type connLevel struct {
	viaPort, direct connResult // the newest container, via its host port and straight to it
	oldest, twin    connResult // the oldest container's port and the twin's only port (top level only)
}

// tputResult is bulk TCP on an empty host.
type tputResult struct {
	direct, hostPort float64 // bit/s, medians
	ratio            float64 // median of the per-pair host port / direct ratios
}

// parallelResult is the parallel-ADD workload.
type parallelResult struct {
	wall     time.Duration
	failures int
	distinct int
	firstErr string
}

// nftResult is one nftables transaction, by an nft process and by netlink.
type nftResult struct{ exec, netlink []time.Duration }

func newResults(opts options, variants []variant) *results {
	r := &results{opts: opts, started: time.Now(), variants: map[string]*variantResults{}}
	for _, v := range variants {
		vr := &variantResults{scale: map[int]*scaleLevel{}, conn: map[int]*connLevel{}}
		for _, l := range opts.levels {
			vr.scale[l] = &scaleLevel{}
		}
		for _, l := range opts.connLevels {
			vr.conn[mappingsAt(l)] = &connLevel{}
		}
		r.variants[v.name] = vr
	}
	return r
}

// mappingsAt is M, the mappings installed with n containers present: 4
// each, and the measured container's one.
func mappingsAt(n int) int { return n*4 + 1 }
