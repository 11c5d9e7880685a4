package timeline

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Unset, nothing is recorded or written; set, one JSON line per process
// holds the phases in order, on a clock that only goes forward.
func TestMarkAndFlush(t *testing.T) {
	rec = nil
	Mark("x")
	Flush()

	path := filepath.Join(t.TempDir(), "tl.jsonl")
	rec = &recorder{path: path, line: Line{Plugin: "bridge", PID: 7, Command: "ADD"}}
	t.Cleanup(func() { rec = nil })
	Mark("config")
	Mark("veth")
	Flush()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(data), "\n") != 1 {
		t.Fatalf("want one line, got %q", data)
	}
	var l Line
	if err := json.Unmarshal(data, &l); err != nil {
		t.Fatal(err)
	}
	var phases []string
	for i, e := range l.Events {
		phases = append(phases, e.Phase)
		if i > 0 && e.T < l.Events[i-1].T {
			t.Errorf("time went back at %s: %v", e.Phase, l.Events)
		}
	}
	if l.Plugin != "bridge" || l.PID != 7 || l.Command != "ADD" || strings.Join(phases, ",") != "config,veth,exit" {
		t.Errorf("line %+v", l)
	}
}
