package watch

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
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
	if err := writeStatusFile(a.StatusFile, data); err != nil && !a.warnedStatus {
		a.warnedStatus = true
		a.Log.Printf("status file: %v", err)
	}
}

// writeStatusFile replaces path with data, safely in a directory others
// can write to as well: the new content goes to a file of a random name
// created exclusively (O_EXCL: a planted symlink is refused, not
// followed), then renamed over path (rename replaces a symlink there, it
// does not write through it). The directory must be ours and writable
// by no one else, else someone could swap the file between the two.
func writeStatusFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !st.IsDir() || !ok || int(sys.Uid) != os.Geteuid() || st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("not written: %s is not a directory of this user's that only it can write to (mode %s); choose another -status-file", dir, st.Mode())
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
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
