package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

func fmtMS(ds []time.Duration) string {
	if len(ds) == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f / %.1f", ms(median(ds)), ms(p90(ds)))
}

func sum(a, b []time.Duration) []time.Duration {
	out := make([]time.Duration, 0, len(a))
	for i := range a {
		if i < len(b) {
			out = append(out, a[i]+b[i])
		}
	}
	return out
}

func machine() string {
	host, _ := os.Hostname()
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("%d cores, kernel %s, host %s", runtime.NumCPU(), strings.TrimSpace(string(kernel)), host)
}

// best returns the variant of prefix ("ours"/"ref") with the lowest value.
func best(variants []variant, prefix string, value func(string) float64, lowerIsBetter bool) (string, float64) {
	name, v := "", 0.0
	for _, vr := range variants {
		if !strings.HasPrefix(vr.name, prefix) {
			continue
		}
		x := value(vr.name)
		if name == "" || (lowerIsBetter && x < v) || (!lowerIsBetter && x > v) {
			name, v = vr.name, x
		}
	}
	return name, v
}

// near prints a ratio to 2 decimals, or more when 2 would show the goal
// itself and so hide which side of it the ratio is on.
func near(v, goal float64) string {
	for prec := 2; prec < 5; prec++ {
		if s := fmt.Sprintf("%.*f", prec, v); s != fmt.Sprintf("%.*f", prec, goal) || v == goal {
			return s
		}
	}
	return fmt.Sprintf("%.5f", v)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// table writes one markdown table into b.
type table struct{ b *strings.Builder }

func (t table) w(format string, args ...any) { fmt.Fprintf(t.b, format, args...) }

func (t table) header(cols ...string) {
	t.w("| %s |\n|%s\n", strings.Join(cols, " | "), strings.Repeat(" --- |", len(cols)))
}

func (t table) row(cells ...string) { t.w("| %s |\n", strings.Join(cells, " | ")) }

// report is the whole results.md: an introduction, then one table per workload.
func report(r *results, variants []variant) string {
	var b strings.Builder
	t := table{&b}
	for _, section := range []func(table, *results, []variant){
		reportIntro, reportEmptyHost, reportScale, reportTwin, reportKernelFloor, reportPlugins,
		reportConnections, reportDirect, reportSameRounds, reportThroughput, reportParallel, reportNFT, reportTargets,
	} {
		section(t, r, variants)
	}
	return b.String()
}

func reportIntro(t table, r *results, variants []variant) {
	t.w("## Benchmark: ours vs reference plugins v1.10.0\n\n")
	t.w("%s, %s, `make bench`, whole run %s after the build, %s of it waiting for idle CPUs. %d runs per latency figure on an empty host, %d with containers present.\n",
		machine(), r.started.Format("2006-01-02"), r.elapsed.Round(time.Second), r.settled.Round(time.Second), r.opts.runs, r.opts.scaleRuns)
	var fills []string
	for _, v := range variants {
		fills = append(fills, fmt.Sprintf("%s %s", v.name, r.variants[v.name].fillTime.Round(time.Second)))
	}
	t.w("Adding the containers present took: %s.\n", strings.Join(fills, ", "))
	if fillMasq {
		t.w("The containers present run the measured chain: 4 published ports each, and outbound masquerade.\n")
	} else {
		t.w("The containers present publish 4 ports each; beyond the first %d (the parallel ADDs, the measured chain) they do not masquerade outbound (`-fill-masq` adds it).\n", r.opts.parallelN)
	}
	t.w("Empty-host figures interleave the variants run by run; figures with containers present measure each variant on a host holding only its own containers.\n")
	t.w("Latencies in ms, median / p90, chain bridge + host-local + portmap through libcni.\n\n")
}

func reportEmptyHost(t table, r *results, variants []variant) {
	t.w("### Chain ADD and DEL on an empty host\n\n")
	t.header("variant", "ADD, 1 mapping", "DEL, 1 mapping", "ADD+DEL, 1 mapping", "ADD, 10 mappings", "DEL, 10 mappings")
	for _, v := range variants {
		e := r.variants[v.name].empty
		t.row(v.name, fmtMS(e.add1), fmtMS(e.del1), fmtMS(sum(e.add1, e.del1)), fmtMS(e.add10), fmtMS(e.del10))
	}
}

func reportScale(t table, r *results, variants []variant) {
	t.w("\n### Chain latency with N containers already present (4 mappings each; the measured container has 4)\n\n")
	cols := []string{"variant"}
	for _, l := range r.opts.levels {
		cols = append(cols, fmt.Sprintf("ADD N=%d", l))
	}
	for _, l := range r.opts.levels {
		cols = append(cols, fmt.Sprintf("DEL N=%d", l))
	}
	t.header(cols...)
	for _, v := range variants {
		sc := r.variants[v.name].scale
		row := []string{v.name}
		for _, l := range r.opts.levels {
			row = append(row, fmtMS(sc[l].add))
		}
		for _, l := range r.opts.levels {
			row = append(row, fmtMS(sc[l].del))
		}
		t.row(row...)
	}
}

func reportTwin(t table, r *results, variants []variant) {
	top := r.topLevel()
	t.w("\nThe ADDs at N=%d against an empty host of the same variant, measured in the same rounds, so that a slow minute of the machine hits both alike:\n\n", top)
	t.header("variant", fmt.Sprintf("ADD N=%d", top), "ADD, empty twin host", "ratio")
	for _, v := range variants {
		sl := r.variants[v.name].scale[top]
		t.row(v.name, fmtMS(sl.add), fmtMS(sl.twinAdd), fmt.Sprintf("%.2f", r.twinRatio(v.name)))
	}
}

func reportKernelFloor(t table, r *results, variants []variant) {
	t.w("\nKernel floor at the same N in each variant's host, no plugin involved (ms, median / p90): a veth pair made, attached to the bridge and brought up; then deleted.\n\n")
	t.header(append([]string{"host of", "kernel"}, levelCols(r.opts.levels)...)...)
	for _, v := range variants {
		sc := r.variants[v.name].scale
		t.row(v.name, "veth add+attach", joinLevels(r.opts.levels, func(l int) string { return fmtMS(sc[l].kernelAdd) }))
		t.row(v.name, "veth delete", joinLevels(r.opts.levels, func(l int) string { return fmtMS(sc[l].kernelDel) }))
	}
}

func reportPlugins(t table, r *results, variants []variant) {
	ends := []int{r.opts.levels[0], r.topLevel()}
	t.w("\nEach plugin alone, ADD+DEL, invoked as libcni does (ms, median / p90 of %d runs):\n\n", r.opts.pluginRuns)
	t.header(append([]string{"variant", "plugin"}, levelCols(ends)...)...)
	for _, v := range variants {
		sc := r.variants[v.name].scale
		for _, p := range []string{"bridge (incl. host-local)", "host-local", "portmap"} {
			t.row(v.name, p, joinLevels(ends, func(l int) string { return fmtMS(sc[l].plugins[p]) }))
		}
	}
}

func reportConnections(t table, r *results, variants []variant) {
	counts := r.mappingCounts()
	t.w("\n### New connections through one host port with M mappings installed (the measured one added last)\n\n")
	t.w("Median of %d rounds of %s, alternating with the direct rounds below, in an order that rotates every round; %d parallel clients.\n\n", r.opts.connRounds, r.opts.connDur, runtime.NumCPU())
	cols := []string{"variant"}
	for _, m := range counts {
		cols = append(cols, fmt.Sprintf("conn/s M=%d", m))
	}
	t.header(append(cols, "connect+close p50/p90 µs at M=1", fmt.Sprintf("at M=%d", counts[len(counts)-1]), "failed")...)
	us := func(c connResult) string {
		return fmt.Sprintf("%.0f / %.0f", float64(median(c.lat))/1e3, float64(p90(c.lat))/1e3)
	}
	for _, v := range variants {
		conn := r.variants[v.name].conn
		row := []string{v.name}
		failed := 0
		for _, m := range counts {
			row = append(row, fmt.Sprintf("%.0f", conn[m].viaPort.rate))
			failed += conn[m].viaPort.failed
		}
		t.row(append(row, us(conn[counts[0]].viaPort), us(conn[counts[len(counts)-1]].viaPort), fmt.Sprint(failed))...)
	}
}

func reportDirect(t table, r *results, variants []variant) {
	counts := r.mappingCounts()
	t.w("\nThe same clients straight to the container's address (no DNAT, no NAT rule at all), conn/s:\n\n")
	cols := []string{"variant"}
	for _, m := range counts {
		cols = append(cols, fmt.Sprintf("direct, N for M=%d", m))
	}
	t.header(append(cols, "ratio last/first")...)
	for _, v := range variants {
		conn := r.variants[v.name].conn
		row := []string{v.name}
		for _, m := range counts {
			row = append(row, fmt.Sprintf("%.0f", conn[m].direct.rate))
		}
		t.row(append(row, fmt.Sprintf("%.2f", conn[counts[len(counts)-1]].direct.rate/conn[counts[0]].direct.rate))...)
	}
}

func reportSameRounds(t table, r *results, variants []variant) {
	counts := r.mappingCounts()
	last := counts[len(counts)-1]
	t.w("\nAt M=%d, in the same rounds (ratios: the median over rounds of the two rates in that round): the newest container's port (above) against the oldest container's first port on the same host, whose mapping was installed first, and against the only port (M=1) of the variant's empty twin host:\n\n", last)
	t.header("variant", "conn/s, newest container's port", "conn/s, oldest container's port", "conn/s, twin host M=1", "newest / oldest", "newest / twin M=1", "newest / direct")
	for _, v := range variants {
		c := r.variants[v.name].conn[last]
		t.row(v.name, fmt.Sprintf("%.0f", c.viaPort.rate), fmt.Sprintf("%.0f", c.oldest.rate), fmt.Sprintf("%.0f", c.twin.rate),
			fmt.Sprintf("%.2f", pairedRatio(c.viaPort, c.oldest)), fmt.Sprintf("%.2f", pairedRatio(c.viaPort, c.twin)), fmt.Sprintf("%.2f", pairedRatio(c.viaPort, c.direct)))
	}
}

func reportThroughput(t table, r *results, variants []variant) {
	t.w("\n### Bulk TCP from the client netns, empty host (%d pairs of alternating runs of %s; medians, and the median of the pairs' ratios)\n\n", tputPairs, tputDur)
	t.header("variant", "direct to container (Gbit/s)", "through host port (Gbit/s)", "ratio")
	for _, v := range variants {
		tp := r.variants[v.name].tput
		t.row(v.name, fmt.Sprintf("%.2f", tp.direct/1e9), fmt.Sprintf("%.2f", tp.hostPort/1e9), fmt.Sprintf("%.2f", tp.ratio))
	}
}

func reportParallel(t table, r *results, variants []variant) {
	t.w("\n### %d chain ADDs at once on an empty host (4 mappings each; the first containers of the scale run)\n\n", r.opts.parallelN)
	t.header("variant", "wall time (s)", "failures", "distinct addresses", "first error")
	for _, v := range variants {
		p := r.variants[v.name].parallel
		t.row(v.name, fmt.Sprintf("%.2f", p.wall.Seconds()), fmt.Sprint(p.failures), fmt.Sprint(p.distinct), trunc(p.firstErr, 80))
	}
}

func reportNFT(t table, r *results, _ []variant) {
	t.w("\n### One nftables transaction (add one map element)\n\n")
	t.header("how", "median / p90 (ms)")
	t.row("`nft -f -` process (what sigs.k8s.io/knftables runs per transaction)", fmtMS(r.nft.exec))
	t.row("netlink in-process, our backend (github.com/google/nftables)", fmtMS(r.nft.netlink))
}

// reportTargets compares our best backend with the reference's best; a
// run of -variants without both sides has no targets.
func reportTargets(t table, r *results, variants []variant) {
	if !slices.ContainsFunc(variants, func(v variant) bool { return strings.HasPrefix(v.name, "ours") }) ||
		!slices.ContainsFunc(variants, func(v variant) bool { return strings.HasPrefix(v.name, "ref") }) {
		t.w("\n### Targets\n\nNot computed: this run measured only %d of the variants.\n", len(variants))
		return
	}
	t.w("\n### Targets (our best backend vs the reference's best)\n\n")
	t.header("target", "ours", "reference", "ratio", "goal", "")
	v := func(n string) *variantResults { return r.variants[n] }
	addDel := func(n string) float64 { return ms(median(sum(v(n).empty.add1, v(n).empty.del1))) }
	on, ov := best(variants, "ours", addDel, true)
	rn, rv := best(variants, "ref", addDel, true)
	t.w("| chain ADD+DEL median, 1 mapping | %.1f ms (%s) | %.1f ms (%s) | %s | ≤ 0.2 | %s |\n", ov, on, rv, rn, near(ov/rv, 0.2), verdict(ov/rv <= 0.2))
	lo, hi := r.opts.levels[0], r.topLevel()
	growth := func(n string) float64 { return ms(median(v(n).scale[hi].add)) / ms(median(v(n).scale[lo].add)) }
	gn, gv := best(variants, "ours", growth, true)
	gr, grv := best(variants, "ref", growth, true)
	t.w("| ADD latency N=%d / N=%d, measured minutes apart | %s (%s) | %.2f (%s) | | ≤ 1.2 | %s |\n", hi, lo, near(gv, 1.2), gn, grv, gr, verdict(gv <= 1.2))
	tn0, tv0 := best(variants, "ours", r.twinRatio, true)
	tr0, trv0 := best(variants, "ref", r.twinRatio, true)
	t.w("| ADD latency N=%d / empty twin host, same rounds | %s (%s) | %.2f (%s) | | ≤ 1.1 | %s |\n", hi, near(tv0, 1.1), tn0, trv0, tr0, verdict(tv0 <= 1.1))
	// The iptables backend's own goals (issue 28): both methods within 1.3.
	if ipt := "ours-iptables"; v(ipt) != nil && v(ipt).scale[hi] != nil && v(ipt).scale[lo] != nil {
		g, tw := growth(ipt), r.twinRatio(ipt)
		t.w("| the same two, iptables backend: N=%d / N=%d; / twin | %s; %s (%s) | | | ≤ 1.3 | %s |\n", hi, lo, near(g, 1.3), near(tw, 1.3), ipt, verdict(g <= 1.3 && tw <= 1.3))
	}
	counts := r.mappingCounts()
	first, last := counts[0], counts[len(counts)-1]
	keep := func(n string) float64 { return v(n).conn[last].viaPort.rate / v(n).conn[first].viaPort.rate }
	kn, kv := best(variants, "ours", keep, false)
	kr, krv := best(variants, "ref", keep, false)
	t.w("| conn rate M=%d / M=%d, measured minutes apart | %s (%s) | %.2f (%s) | | ≥ 0.95 | %s |\n", last, first, near(kv, 0.95), kn, krv, kr, verdict(kv >= 0.95))
	directKeep := func(n string) float64 { return v(n).conn[last].direct.rate / v(n).conn[first].direct.rate }
	t.w("| the same without NAT (direct), N=%d / N=0: the kernel's own share | %.2f (%s) | %.2f (%s) | | | |\n", (last-1)/4, directKeep(kn), kn, directKeep(kr), kr)
	twinKeep := func(n string) float64 { return pairedRatio(v(n).conn[last].viaPort, v(n).conn[last].twin) }
	twn, twv := best(variants, "ours", twinKeep, false)
	twr, twrv := best(variants, "ref", twinKeep, false)
	t.w("| conn rate M=%d / M=1 on the empty twin host, same rounds | %s (%s) | %.2f (%s) | | ≥ 0.95 | %s |\n", last, near(twv, 0.95), twn, twrv, twr, verdict(twv >= 0.95))
	newest := func(n string) float64 { return pairedRatio(v(n).conn[last].viaPort, v(n).conn[last].oldest) }
	nn, nv := best(variants, "ours", newest, false)
	nr, nrv := best(variants, "ref", newest, false)
	t.w("| conn rate newest / oldest port, same host, M=%d | %s (%s) | %.2f (%s) | | ≥ 0.95 | %s |\n", last, near(nv, 0.95), nn, nrv, nr, verdict(nv >= 0.95))
	tn, tv := best(variants, "ours", func(n string) float64 { return v(n).tput.ratio }, false)
	t.w("| throughput host port / direct | %s (%s) | | | ≥ 0.95 | %s |\n", near(tv, 0.95), tn, verdict(tv >= 0.95))
	wall := func(n string) float64 {
		if p := v(n).parallel; p.failures == 0 {
			return p.wall.Seconds()
		}
		return 1e9
	}
	pn, pv := best(variants, "ours", wall, true)
	pr, prv := best(variants, "ref", wall, true)
	t.w("| %d parallel ADDs, wall time (no failure) | %.2f s (%s) | %.2f s (%s) | %.2f | ≤ 0.5 | %s |\n", r.opts.parallelN, pv, pn, prv, pr, pv/prv, verdict(pv/prv <= 0.5 && v(pn).parallel.failures == 0))
}

// topLevel is the most containers present in the latency workload.
func (r *results) topLevel() int { return r.opts.levels[len(r.opts.levels)-1] }

// mappingCounts are the M of the connection workload, ascending.
func (r *results) mappingCounts() []int {
	var out []int
	for _, l := range r.opts.connLevels {
		out = append(out, mappingsAt(l))
	}
	slices.Sort(out)
	return out
}

// pairedRatio is the median over rounds of a's rate over b's in the same
// round: adjacent rounds share the machine's mood, distant ones do not.
func pairedRatio(a, b connResult) float64 {
	var rs []float64
	for i := 0; i < len(a.rounds) && i < len(b.rounds); i++ {
		if b.rounds[i] > 0 {
			rs = append(rs, a.rounds[i]/b.rounds[i])
		}
	}
	if len(rs) == 0 {
		return 0
	}
	return medianF(rs)
}

// twinRatio is the top level's ADD median over the empty twin's.
func (r *results) twinRatio(variant string) float64 {
	sl := r.variants[variant].scale[r.topLevel()]
	return ms(median(sl.add)) / ms(median(sl.twinAdd))
}

func trunc(s string, n int) string {
	s = strings.ReplaceAll(s, "|", "/")
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// curves are the two plotted panels: ADD median vs N, and the connection
// rate relative to one mapping vs M.
func curves(r *results, variants []variant) (left, right []series) {
	counts := r.mappingCounts()
	for _, v := range variants {
		vr := r.variants[v.name]
		s := series{name: v.name}
		for _, l := range r.opts.levels {
			s.xs = append(s.xs, float64(l))
			s.ys = append(s.ys, ms(median(vr.scale[l].add)))
		}
		left = append(left, s)
		c := series{name: v.name}
		for _, m := range counts {
			c.xs = append(c.xs, float64(m))
			c.ys = append(c.ys, vr.conn[m].viaPort.rate/vr.conn[counts[0]].viaPort.rate)
		}
		right = append(right, c)
	}
	return left, right
}

func levelCols(levels []int) []string {
	var out []string
	for _, l := range levels {
		out = append(out, fmt.Sprintf("N=%d", l))
	}
	return out
}

func joinLevels(levels []int, f func(int) string) string {
	var out []string
	for _, l := range levels {
		out = append(out, f(l))
	}
	return strings.Join(out, " | ")
}
