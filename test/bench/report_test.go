package main

import "testing"

func TestNear(t *testing.T) {
	for _, tc := range []struct {
		v, goal float64
		want    string
	}{
		{1.09, 1.2, "1.09"},
		{1.2, 1.2, "1.20"},
		{1.2004, 1.2, "1.2004"}, // rounds to the goal at 2 and 3 decimals
		{0.948, 0.95, "0.948"},
		{0.953, 0.95, "0.953"},
	} {
		if got := near(tc.v, tc.goal); got != tc.want {
			t.Errorf("near(%v, %v) = %q, want %q", tc.v, tc.goal, got, tc.want)
		}
	}
}

func TestPairedRatio(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b []float64
		want float64
	}{
		{"median of per-round ratios", []float64{100, 200, 300}, []float64{100, 100, 100}, 2},
		{"a slow round spoils one ratio only", []float64{50, 100, 100}, []float64{100, 100, 100}, 1},
		{"rounds without a rate are skipped", []float64{100, 100}, []float64{0, 50}, 2},
		{"no rounds", nil, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := pairedRatio(connResult{rounds: tc.a}, connResult{rounds: tc.b})
			if got != tc.want {
				t.Errorf("pairedRatio = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPublishReadmeCopiesTheTargetsTable(t *testing.T) {
	results := "## Benchmark\n\n2 cores, 2026-11-30, `make bench`, whole run 11m.\n\n### Targets (ours vs ref)\n\n| target | ours |\n| --- | --- |\n| a | 1 |\n\nafter\n"
	table, err := targetsTable(results)
	if err != nil {
		t.Fatal(err)
	}
	doc := "intro\n" + readmeBegin + "\nold table\n" + readmeEnd + "\nrest\n"
	got, err := replaceBetween(doc, readmeBegin, readmeEnd, table)
	if err != nil {
		t.Fatal(err)
	}
	want := "intro\n" + readmeBegin + "\n2 cores, 2026-11-30, `make bench`, whole run 11m.\n\n| target | ours |\n| --- | --- |\n| a | 1 |\n" + readmeEnd + "\nrest\n"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if _, err := replaceBetween("no markers", readmeBegin, readmeEnd, table); err == nil {
		t.Error("a README without markers was accepted")
	}
}
