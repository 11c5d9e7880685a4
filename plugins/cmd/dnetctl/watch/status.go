package watch

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// status is what the status file holds: the agent's health line for a
// probe (a DaemonSet's exec probe, systemd), and the ports it holds, which
// dnetctl list shows.
type status struct {
	PID             int      `json:"pid"`
	Updated         string   `json:"updated"`
	StateDir        string   `json:"stateDir"`
	Attachments     int      `json:"attachments"`
	Held            []string `json:"held"`
	Restores        int      `json:"restores"`
	LastRestore     string   `json:"lastRestore,omitempty"`
	LastRestoreTook string   `json:"lastRestoreTook,omitempty"`
}

// DefaultStatusFile is where the agent and dnetctl list meet by default.
const DefaultStatusFile = "/run/dockernet/watch.json"

// statusEvery is how often the status file is rewritten when nothing
// changed: its "updated" is the agent's heartbeat. A thousand attachments
// hold eight thousand ports, a file of some 200 KB not worth writing at
// every poll.
const statusEvery = 10 * time.Second

func (a *Agent) writeStatus() {
	if a.StatusFile == "" {
		return
	}
	held := a.held.held()
	now := time.Now()
	changed := a.records.count() != a.status.Attachments || !slices.Equal(held, a.status.Held) || a.status.Restores != a.written.restores
	if !changed && now.Sub(a.written.at) < statusEvery {
		return
	}
	a.written.at, a.written.restores = now, a.status.Restores
	a.status.PID, a.status.StateDir = os.Getpid(), a.Env.Store.Dir
	a.status.Updated = now.UTC().Format(time.RFC3339Nano)
	a.status.Attachments, a.status.Held = a.records.count(), held
	data, _ := json.MarshalIndent(a.status, "", "  ")
	_ = os.MkdirAll(filepath.Dir(a.StatusFile), 0o755)
	tmp := a.StatusFile + ".tmp"
	if os.WriteFile(tmp, data, 0o644) == nil {
		_ = os.Rename(tmp, a.StatusFile)
	}
}

// ReadStatus reads the status a live agent wrote at path; false when
// there is none, or its agent is gone.
func ReadStatus(path string) (Status, bool) {
	var s status
	data, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(data, &s) != nil || s.PID <= 0 {
		return Status{}, false
	}
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(s.PID))); err != nil {
		return Status{}, false
	}
	return Status(s), true
}

// Status is the agent's status as read by dnetctl.
type Status status
