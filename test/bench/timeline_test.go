package main

import (
	"os"
	"path/filepath"
	"testing"
)

// timelineRows lines up the caller's marks and the plugin's by pid, gives
// host-local's start after its bridge's exec, and keeps chain order: the
// ADD's, and the DEL's (portmap first), each from its own lines.
func TestTimelineRows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tl.jsonl")
	lines := `{"plugin":"portmap","pid":7,"command":"ADD","events":[{"phase":"init","t":30000000},{"phase":"main","t":31000000},{"phase":"exit","t":35000000}]}
{"plugin":"caller:portmap","pid":7,"command":"ADD","events":[{"phase":"exec","t":20000000},{"phase":"reaped","t":36000000}]}
{"plugin":"bridge","pid":5,"command":"ADD","events":[{"phase":"init","t":10000000},{"phase":"main","t":12000000},{"phase":"veth","t":15000000},{"phase":"exit","t":18000000}]}
{"plugin":"host-local","pid":6,"command":"ADD","events":[{"phase":"init","t":13000000},{"phase":"main","t":14000000},{"phase":"exit","t":16000000}]}
{"plugin":"caller:bridge","pid":5,"command":"ADD","events":[{"phase":"exec","t":0},{"phase":"reaped","t":19000000}]}
{"plugin":"caller:bridge","pid":9,"command":"DEL","events":[{"phase":"exec","t":40000000},{"phase":"reaped","t":50000000}]}
{"plugin":"portmap","pid":8,"command":"DEL","events":[{"phase":"init","t":33000000},{"phase":"main","t":34000000},{"phase":"exit","t":37000000}]}
{"plugin":"caller:portmap","pid":8,"command":"DEL","events":[{"phase":"exec","t":30000000},{"phase":"reaped","t":39000000}]}
`
	if err := os.WriteFile(path, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		command string
		want    []timelineRow
	}{
		{"ADD", []timelineRow{
			{"bridge", "start", "", 10}, {"bridge", "inits", "", 2}, {"bridge", "veth", "", 3}, {"bridge", "exit", "", 3},
			{"bridge", "exit → reaped", "", 1}, {"bridge", "total", "", 19},
			{"host-local (in bridge)", "main", "13.00", 1}, {"host-local (in bridge)", "exit", "", 2},
			{"portmap", "start", "", 10}, {"portmap", "inits", "", 1}, {"portmap", "exit", "", 4},
			{"portmap", "exit → reaped", "", 1}, {"portmap", "total", "", 16},
		}},
		{"DEL", []timelineRow{
			{"portmap", "start", "", 3}, {"portmap", "inits", "", 1}, {"portmap", "exit", "", 3},
			{"portmap", "exit → reaped", "", 2}, {"portmap", "total", "", 9},
			{"bridge", "total (no marks inside)", "", 10},
		}},
	} {
		t.Run(tc.command, func(t *testing.T) {
			rows, err := timelineRows(path, tc.command)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != len(tc.want) {
				t.Fatalf("rows %+v, want %+v", rows, tc.want)
			}
			for i := range tc.want {
				if rows[i] != tc.want[i] {
					t.Errorf("row %d: %+v, want %+v", i, rows[i], tc.want[i])
				}
			}
		})
	}
}
