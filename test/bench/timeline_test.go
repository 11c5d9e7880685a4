package main

import (
	"os"
	"path/filepath"
	"testing"
)

// timelineRows lines up the caller's marks and the plugin's by pid, gives
// host-local's start after its bridge's exec, and keeps chain order.
func TestTimelineRows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tl.jsonl")
	lines := `{"plugin":"portmap","pid":7,"command":"ADD","events":[{"phase":"init","t":30000000},{"phase":"main","t":31000000},{"phase":"exit","t":35000000}]}
{"plugin":"caller:portmap","pid":7,"command":"ADD","events":[{"phase":"exec","t":20000000},{"phase":"reaped","t":36000000}]}
{"plugin":"bridge","pid":5,"command":"ADD","events":[{"phase":"init","t":10000000},{"phase":"main","t":12000000},{"phase":"veth","t":15000000},{"phase":"exit","t":18000000}]}
{"plugin":"host-local","pid":6,"command":"ADD","events":[{"phase":"init","t":13000000},{"phase":"main","t":14000000},{"phase":"exit","t":16000000}]}
{"plugin":"caller:bridge","pid":5,"command":"ADD","events":[{"phase":"exec","t":0},{"phase":"reaped","t":19000000}]}
{"plugin":"caller:bridge","pid":9,"command":"DEL","events":[{"phase":"exec","t":40000000},{"phase":"reaped","t":50000000}]}
`
	if err := os.WriteFile(path, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	rows, err := timelineRows(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []timelineRow{
		{"bridge", "start", "", 10}, {"bridge", "inits", "", 2}, {"bridge", "veth", "", 3}, {"bridge", "exit", "", 3},
		{"bridge", "exit → reaped", "", 1}, {"bridge", "total", "", 19},
		{"host-local (in bridge)", "main", "13.00", 1}, {"host-local (in bridge)", "exit", "", 2},
		{"portmap", "start", "", 10}, {"portmap", "inits", "", 1}, {"portmap", "exit", "", 4},
		{"portmap", "exit → reaped", "", 1}, {"portmap", "total", "", 16},
	}
	if len(rows) != len(want) {
		t.Fatalf("rows %+v, want %+v", rows, want)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("row %d: %+v, want %+v", i, rows[i], want[i])
		}
	}
}
