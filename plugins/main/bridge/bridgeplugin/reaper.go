package bridgeplugin

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
	"github.com/dockernet/cni-plugins/plugins/pkg/state"
)

// A retired pair's child outlives DEL: once the plugin has exited, the
// kernel gives the child to the nearest subreaper or to the pid
// namespace's init, which must wait for it when it exits. Most do
// (systemd, tini, docker-init, containerd's shims); some do not (k3s or
// k0s run as a container's PID 1 without an init), and there each DEL
// would leave a zombie holding a pid. So DEL notes its child (pid and
// start time) in the state directory, and a later DEL that finds that
// child still a zombie reapGrace after it was forked knows that nothing
// here reaps: it leaves a mark, says so on stderr, and from then on
// deletes pairs itself. The note and the mark are the host's state and
// go with its last attachment, as its other state does; a host that does
// not reap shows it again at the next DEL's child.
const (
	deleterFile  = "deleter"        // "pid starttime" of the last DEL's child
	noReaperFile = "deleter-noreap" // the mark: nothing here reaps orphans
	reapGrace    = 2 * time.Second
)

// childrenReaped reports whether a retired pair's child may be left to
// this host's reaper.
func childrenReaped(stateDir string) bool {
	dir := state.New(stateDir).Dir
	if _, err := os.Stat(filepath.Join(dir, noReaperFile)); err == nil {
		return false
	}
	noted := filepath.Join(dir, deleterFile)
	fi, err := os.Stat(noted)
	if err != nil || time.Since(fi.ModTime()) < reapGrace {
		return true // no child noted, or too recent to judge
	}
	var pid int
	var start uint64
	data, err := os.ReadFile(noted)
	if err != nil {
		return true
	}
	if _, err := fmt.Sscan(string(data), &pid, &start); err != nil {
		return true
	}
	if st, at, ok := procStat(pid); !ok || st != 'Z' || at != start {
		return true // reaped (or never a zombie): the pid is gone or another's
	}
	msg := fmt.Sprintf("bridge: the child that deleted a veth pair (pid %d) was still a zombie %s after it was forked: nothing on this host reaps orphaned processes (a container's PID 1 without an init?); DEL deletes veth pairs itself until the host's last attachment is gone (the mark: %s)\n",
		pid, reapGrace, filepath.Join(dir, noReaperFile))
	_ = os.WriteFile(filepath.Join(dir, noReaperFile), []byte(msg), 0o600)
	fmt.Fprint(os.Stderr, msg)
	return false
}

// noteDeleter records the child just forked, for a later DEL to look at.
func noteDeleter(stateDir string, pid int) {
	_, start, ok := procStat(pid)
	if !ok {
		return
	}
	dir := state.New(stateDir).Dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return
	}
	_ = os.WriteFile(filepath.Join(dir, deleterFile), []byte(fmt.Sprintf("%d %d\n", pid, start)), 0o600)
}

// forgetDeleter drops the note and the mark once no attachment is left.
func forgetDeleter(stateDir string) {
	dir := state.New(stateDir).Dir
	note, mark := filepath.Join(dir, deleterFile), filepath.Join(dir, noReaperFile)
	_, noteErr := os.Stat(note)
	_, markErr := os.Stat(mark)
	if noteErr != nil && markErr != nil {
		return
	}
	if busy, err := attachment.HostEnv(stateDir).AnyLink(); err != nil || busy {
		return
	}
	_ = os.Remove(note)
	_ = os.Remove(mark)
}

// procStat reads a process's state and start time, fields 3 and 22 of
// /proc/PID/stat. The command name before them is in parentheses and may
// hold spaces and parentheses: the fields are counted from its last ')'.
func procStat(pid int) (st byte, start uint64, ok bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, false
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return f[0][0], start, err == nil
}
