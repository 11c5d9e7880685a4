// Package timeline records when each phase of a plugin command ends, for
// the bench's ADD timeline (bench -timeline). With DNET_TIMELINE set to a
// file, a process appends one JSON line there as it ends: its plugin,
// pid, command and the phases in order, each at CLOCK_MONOTONIC, which
// every process on the machine shares, so the caller's own marks (before
// the exec, after the wait) line up with the plugin's. Unset, Mark is a
// nil check and Flush nothing.
package timeline

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// Env names the file the timeline lines are appended to.
const Env = "DNET_TIMELINE"

// Event is one phase's end, in nanoseconds of CLOCK_MONOTONIC.
type Event struct {
	Phase string `json:"phase"`
	T     int64  `json:"t"`
}

// Line is what one process appends.
type Line struct {
	Plugin  string  `json:"plugin"`
	PID     int     `json:"pid"`
	Command string  `json:"command"`
	Events  []Event `json:"events"`
}

var rec *recorder

type recorder struct {
	path string
	mu   sync.Mutex // the IPAM exec runs beside the link work
	line Line
}

func init() {
	path := os.Getenv(Env)
	if path == "" {
		return
	}
	rec = &recorder{path: path, line: Line{Plugin: filepath.Base(os.Args[0]), PID: os.Getpid(), Command: os.Getenv("CNI_COMMAND")}}
	Mark("init") // the runtime and the packages before this one are up
}

// Now is CLOCK_MONOTONIC in nanoseconds.
func Now() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// Mark records that phase ended now.
func Mark(phase string) {
	if rec == nil {
		return
	}
	t := Now()
	rec.mu.Lock()
	rec.line.Events = append(rec.line.Events, Event{phase, t})
	rec.mu.Unlock()
}

// Flush appends the process's line, in one write.
func Flush() {
	if rec == nil {
		return
	}
	Mark("exit")
	rec.mu.Lock()
	line := rec.line
	rec.mu.Unlock()
	_ = Append(rec.path, line)
}

// Append writes l to the timeline file at path as one line, in one write
// (O_APPEND), so processes appending at once do not interleave.
func Append(path string, l Line) error {
	data, err := json.Marshal(l)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(data, '\n'))
	return errors.Join(err, f.Close())
}
