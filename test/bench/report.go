package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
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

func report(r *results, variants []variant) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	header := func(cols ...string) {
		w("| %s |\n|%s\n", strings.Join(cols, " | "), strings.Repeat(" --- |", len(cols)))
	}
	w("## Benchmark: ours vs reference plugins v1.10.0\n\n")
	w("%s, %s, `make bench`, whole run %s after the build, %s of it waiting for idle CPUs. %d runs per latency figure on an empty host, %d with containers present.\n",
		machine(), r.started.Format("2006-01-02"), r.elapsed.Round(time.Second), settled.Round(time.Second), r.runs, r.scaleRuns)
	var fills []string
	for _, v := range variants {
		fills = append(fills, fmt.Sprintf("%s %s", v.name, r.fillTime[v.name].Round(time.Second)))
	}
	w("Adding the containers present took: %s.\n", strings.Join(fills, ", "))
	if fillMasq {
		w("The containers present run the measured chain: 4 published ports each, and outbound masquerade.\n")
	} else {
		w("The containers present publish 4 ports each; beyond the first %d (the parallel ADDs, the measured chain) they do not masquerade outbound (`-fill-masq` adds it).\n", r.parallelN)
	}
	w("Empty-host figures interleave the variants run by run; figures with containers present measure each variant on a host holding only its own containers.\n")
	w("Latencies in ms, median / p90, chain bridge + host-local + portmap through libcni.\n\n")

	w("### Chain ADD and DEL on an empty host\n\n")
	header("variant", "ADD, 1 mapping", "DEL, 1 mapping", "ADD+DEL, 1 mapping", "ADD, 10 mappings", "DEL, 10 mappings")
	for _, v := range variants {
		n := v.name
		w("| %s | %s | %s | %s | %s | %s |\n", n, fmtMS(r.add1[n]), fmtMS(r.del1[n]), fmtMS(sum(r.add1[n], r.del1[n])), fmtMS(r.add10[n]), fmtMS(r.del10[n]))
	}

	w("\n### Chain latency with N containers already present (4 mappings each; the measured container has 4)\n\n")
	cols := []string{"variant"}
	for _, l := range r.levels {
		cols = append(cols, fmt.Sprintf("ADD N=%d", l))
	}
	for _, l := range r.levels {
		cols = append(cols, fmt.Sprintf("DEL N=%d", l))
	}
	header(cols...)
	for _, v := range variants {
		row := []string{v.name}
		for _, l := range r.levels {
			row = append(row, fmtMS(r.scaleAdd[l][v.name]))
		}
		for _, l := range r.levels {
			row = append(row, fmtMS(r.scaleDel[l][v.name]))
		}
		w("| %s |\n", strings.Join(row, " | "))
	}

	top := r.levels[len(r.levels)-1]
	w("\nThe ADDs at N=%d against an empty host of the same variant, measured in the same rounds, so that a slow minute of the machine hits both alike:\n\n", top)
	header("variant", fmt.Sprintf("ADD N=%d", top), "ADD, empty twin host", "ratio")
	for _, v := range variants {
		w("| %s | %s | %s | %.2f |\n", v.name, fmtMS(r.scaleAdd[top][v.name]), fmtMS(r.twinAdd[top][v.name]), twinRatio(r, top, v.name))
	}

	w("\nKernel floor at the same N in each variant's host, no plugin involved (ms, median / p90): a veth pair made, attached to the bridge and brought up; then deleted.\n\n")
	header(append([]string{"host of", "kernel"}, levelCols(r.levels)...)...)
	for _, v := range variants {
		w("| %s | veth add+attach | %s |\n", v.name, joinLevels(r.levels, func(l int) string { return fmtMS(r.kernelAdd[l][v.name]) }))
		w("| %s | veth delete | %s |\n", v.name, joinLevels(r.levels, func(l int) string { return fmtMS(r.kernelDel[l][v.name]) }))
	}

	ends := []int{r.levels[0], top}
	w("\nEach plugin alone, ADD+DEL, invoked as libcni does (ms, median / p90 of %d runs):\n\n", r.pluginRuns)
	header(append([]string{"variant", "plugin"}, levelCols(ends)...)...)
	for _, v := range variants {
		for _, p := range []string{"bridge (incl. host-local)", "host-local", "portmap"} {
			w("| %s | %s | %s |\n", v.name, p, joinLevels(ends, func(l int) string { return fmtMS(r.plugins[l][v.name][p]) }))
		}
	}

	ms := sortedKeys(r.conn)
	w("\n### New connections through one host port with M mappings installed (the measured one added last)\n\n")
	w("Median of %d rounds of %s, alternating with the direct rounds below, in an order that rotates every round; %d parallel clients.\n\n", r.connRounds, r.connDur, runtime.NumCPU())
	cols = []string{"variant"}
	for _, m := range ms {
		cols = append(cols, fmt.Sprintf("conn/s M=%d", m))
	}
	cols = append(cols, "connect+close p50/p90 µs at M=1", fmt.Sprintf("at M=%d", ms[len(ms)-1]), "failed")
	header(cols...)
	for _, v := range variants {
		row := []string{v.name}
		failed := 0
		for _, m := range ms {
			row = append(row, fmt.Sprintf("%.0f", r.conn[m][v.name].rate))
			failed += r.conn[m][v.name].failed
		}
		us := func(c connResult) string {
			return fmt.Sprintf("%.0f / %.0f", float64(median(c.lat))/1e3, float64(p90(c.lat))/1e3)
		}
		row = append(row, us(r.conn[ms[0]][v.name]), us(r.conn[ms[len(ms)-1]][v.name]), fmt.Sprint(failed))
		w("| %s |\n", strings.Join(row, " | "))
	}
	w("\nThe same clients straight to the container's address (no DNAT, no NAT rule at all), conn/s:\n\n")
	cols = []string{"variant"}
	for _, m := range ms {
		cols = append(cols, fmt.Sprintf("direct, N for M=%d", m))
	}
	header(append(cols, "ratio last/first")...)
	for _, v := range variants {
		row := []string{v.name}
		for _, m := range ms {
			row = append(row, fmt.Sprintf("%.0f", r.connDirect[m][v.name].rate))
		}
		row = append(row, fmt.Sprintf("%.2f", r.connDirect[ms[len(ms)-1]][v.name].rate/r.connDirect[ms[0]][v.name].rate))
		w("| %s |\n", strings.Join(row, " | "))
	}

	last := ms[len(ms)-1]
	w("\nAt M=%d, in the same rounds (ratios: the median over rounds of the two rates in that round): the newest container's port (above) against the oldest container's first port on the same host, whose mapping was installed first, and against the only port (M=1) of the variant's empty twin host:\n\n", last)
	header("variant", "conn/s, newest container's port", "conn/s, oldest container's port", "conn/s, twin host M=1", "newest / oldest", "newest / twin M=1", "newest / direct")
	for _, v := range variants {
		nw, od, tw := r.conn[last][v.name].rate, r.connOldest[last][v.name].rate, r.connTwin[last][v.name].rate
		c := r.conn[last][v.name]
		w("| %s | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f |\n", v.name, nw, od, tw,
			pairedRatio(c, r.connOldest[last][v.name]), pairedRatio(c, r.connTwin[last][v.name]), pairedRatio(c, r.connDirect[last][v.name]))
	}

	w("\n### Bulk TCP from the client netns, empty host (%d pairs of alternating runs of %s; medians, and the median of the pairs' ratios)\n\n", tputPairs, tputDur)
	header("variant", "direct to container (Gbit/s)", "through host port (Gbit/s)", "ratio")
	for _, v := range variants {
		d, h := r.tputDirect[v.name], r.tputHostPort[v.name]
		w("| %s | %.2f | %.2f | %.2f |\n", v.name, d/1e9, h/1e9, r.tputRatio[v.name])
	}

	w("\n### %d chain ADDs at once on an empty host (4 mappings each; the first containers of the scale run)\n\n", r.parallelN)
	header("variant", "wall time (s)", "failures", "distinct addresses", "first error")
	for _, v := range variants {
		p := r.parallel[v.name]
		w("| %s | %.2f | %d | %d | %s |\n", v.name, p.wall.Seconds(), p.failures, p.distinct, trunc(p.firstErr, 80))
	}

	w("\n### One nftables transaction (add one map element)\n\n")
	header("how", "median / p90 (ms)")
	w("| `nft -f -` process (what sigs.k8s.io/knftables runs per transaction) | %s |\n", fmtMS(r.nftExec))
	w("| netlink in-process, our backend (github.com/google/nftables) | %s |\n", fmtMS(r.nftNetlink))

	// Targets: our best backend against the reference's best.
	w("\n### Targets (our best backend vs the reference's best)\n\n")
	header("target", "ours", "reference", "ratio", "goal", "")
	addDel := func(n string) float64 { return ms2(median(sum(r.add1[n], r.del1[n]))) }
	on, ov := best(variants, "ours", addDel, true)
	rn, rv := best(variants, "ref", addDel, true)
	w("| chain ADD+DEL median, 1 mapping | %.1f ms (%s) | %.1f ms (%s) | %.2f | ≤ 0.33 | %s |\n", ov, on, rv, rn, ov/rv, verdict(ov/rv <= 0.33))
	lo, hi := r.levels[0], r.levels[len(r.levels)-1]
	growth := func(n string) float64 { return ms2(median(r.scaleAdd[hi][n])) / ms2(median(r.scaleAdd[lo][n])) }
	gn, gv := best(variants, "ours", growth, true)
	gr, grv := best(variants, "ref", growth, true)
	w("| ADD latency N=%d / N=%d, measured minutes apart | %s (%s) | %.2f (%s) | | ≤ 1.2 | %s |\n", hi, lo, near(gv, 1.2), gn, grv, gr, verdict(gv <= 1.2))
	twin := func(n string) float64 { return twinRatio(r, hi, n) }
	tn0, tv0 := best(variants, "ours", twin, true)
	tr0, trv0 := best(variants, "ref", twin, true)
	w("| ADD latency N=%d / empty twin host, same rounds | %s (%s) | %.2f (%s) | | ≤ 1.2 | %s |\n", hi, near(tv0, 1.2), tn0, trv0, tr0, verdict(tv0 <= 1.2))
	first, last := ms[0], ms[len(ms)-1]
	keep := func(n string) float64 { return r.conn[last][n].rate / r.conn[first][n].rate }
	kn, kv := best(variants, "ours", keep, false)
	kr, krv := best(variants, "ref", keep, false)
	w("| conn rate M=%d / M=%d, measured minutes apart | %s (%s) | %.2f (%s) | | ≥ 0.95 | %s |\n", last, first, near(kv, 0.95), kn, krv, kr, verdict(kv >= 0.95))
	directKeep := func(n string) float64 { return r.connDirect[last][n].rate / r.connDirect[first][n].rate }
	w("| the same without NAT (direct), N=%d / N=0: the kernel's own share | %.2f (%s) | %.2f (%s) | | | |\n", (last-1)/4, directKeep(kn), kn, directKeep(kr), kr)
	twinKeep := func(n string) float64 { return pairedRatio(r.conn[last][n], r.connTwin[last][n]) }
	twn, twv := best(variants, "ours", twinKeep, false)
	twr, twrv := best(variants, "ref", twinKeep, false)
	w("| conn rate M=%d / M=1 on the empty twin host, same rounds | %s (%s) | %.2f (%s) | | ≥ 0.95 | %s |\n", last, near(twv, 0.95), twn, twrv, twr, verdict(twv >= 0.95))
	newest := func(n string) float64 { return pairedRatio(r.conn[last][n], r.connOldest[last][n]) }
	nn, nv := best(variants, "ours", newest, false)
	nr, nrv := best(variants, "ref", newest, false)
	w("| conn rate newest / oldest port, same host, M=%d | %s (%s) | %.2f (%s) | | ≥ 0.95 | %s |\n", last, near(nv, 0.95), nn, nrv, nr, verdict(nv >= 0.95))
	tp := func(n string) float64 { return r.tputRatio[n] }
	tn, tv := best(variants, "ours", tp, false)
	w("| throughput host port / direct | %s (%s) | | | ≥ 0.95 | %s |\n", near(tv, 0.95), tn, verdict(tv >= 0.95))
	wall := func(n string) float64 {
		p := r.parallel[n]
		if p.failures > 0 {
			return 1e9
		}
		return p.wall.Seconds()
	}
	pn, pv := best(variants, "ours", wall, true)
	pr, prv := best(variants, "ref", wall, true)
	w("| %d parallel ADDs, wall time (no failure) | %.2f s (%s) | %.2f s (%s) | %.2f | ≤ 0.5 | %s |\n", r.parallelN, pv, pn, prv, pr, pv/prv, verdict(pv/prv <= 0.5 && r.parallel[pn].failures == 0))
	return b.String()
}

func ms2(d time.Duration) float64 { return ms(d) }

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

// twinRatio is the filled host's ADD median over its empty twin's, at level l.
func twinRatio(r *results, l int, variant string) float64 {
	return ms(median(r.scaleAdd[l][variant])) / ms(median(r.twinAdd[l][variant]))
}

func trunc(s string, n int) string {
	s = strings.ReplaceAll(s, "|", "/")
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func sortedKeys(m map[int]map[string]connResult) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

// curves are the two plotted panels: ADD median vs N, and the connection
// rate relative to one mapping vs M.
func curves(r *results, variants []variant) (left, right []series) {
	ms := sortedKeys(r.conn)
	for _, v := range variants {
		s := series{name: v.name}
		for _, l := range r.levels {
			s.xs = append(s.xs, float64(l))
			s.ys = append(s.ys, ms2(median(r.scaleAdd[l][v.name])))
		}
		left = append(left, s)
		c := series{name: v.name}
		for _, m := range ms {
			c.xs = append(c.xs, float64(m))
			c.ys = append(c.ys, r.conn[m][v.name].rate/r.conn[ms[0]][v.name].rate)
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
