package bridgeplugin

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
	"github.com/dockernet/cni-plugins/plugins/pkg/state"
)

// A retired pair's child outlives DEL: once the plugin has exited, the
// kernel gives the child to the nearest subreaper or to the pid
// namespace's init, which must wait for it when it exits. Most do
// (systemd, tini, docker-init, containerd's shims); some do not (k3s or
// k0s run as a container's PID 1 without an init), and there each DEL
// would leave a zombie holding a pid. So a DEL notes its child in the
// host's records, and a later DEL looks at that child reapGrace after it
// was forked: reaped, it marks the host as one that reaps, and DELs
// after it neither note nor look (two stats, nothing decoded); still a
// zombie, it marks the host as one that does not, says so on stderr, and
// DELs delete pairs themselves from then on. The records are the host's
// state and go with its last attachment (attachment.ReleaseHost): the
// next busy spell learns again.
const reapGrace = 2 * time.Second

// reaping is what DEL knows of this host's reaping.
type reaping int

const (
	reapUnknown reaping = iota // no child seen yet: retire, and note the child
	reapSeen                   // a child was seen reaped: retire
	reapNone                   // a child was seen a zombie: delete the pair here
)

// deleterNote is a DEL's child, host/deleter.json. A DEL overwrites it;
// one that cannot be read counts as unknown, the safe side.
type deleterNote struct {
	Pid int
	// Start is the boot clock in clock ticks read just before the fork,
	// what field 22 of /proc/PID/stat gives the child (at most a tick
	// later): a process found later under Pid is the child only if it
	// started then (forkedAt).
	Start  uint64
	Forked time.Time // when DEL forked it
}

// userHZ is the clock tick of /proc/PID/stat's times (USER_HZ, 100 on
// every architecture Linux runs containers on).
const userHZ = 100

// forkedAt reports whether a process that started at start (clock
// ticks since boot) is the child a note read noted before its fork: the
// same DEL forks right after reading the clock, well within a second.
func forkedAt(start, noted uint64) bool { return start >= noted && start-noted <= userHZ }

// bootTicks is the boot clock (CLOCK_BOOTTIME, which process start
// times count) in clock ticks.
func bootTicks() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return uint64(ts.Nano()) / (1e9 / userHZ)
}

// reaperMark is host/reaper.json and host/noreaper.json: the child seen.
type reaperMark struct {
	Pid  int
	Seen time.Time
}

// hostReaping tells whether a retired pair's child may be left to this
// host's reaper, looking at a noted child once it is old enough.
func hostReaping(stateDir string) reaping {
	env := attachment.HostEnv(stateDir)
	store := env.Store
	switch {
	case env.Reaps():
		return reapSeen
	case store.Has(attachment.HostFolder, attachment.NoReaperTag):
		return reapNone
	}
	var note deleterNote
	if found, err := store.Load(attachment.HostFolder, attachment.DeleterTag, &note); !found || err != nil || time.Since(note.Forked) < reapGrace {
		return reapUnknown // no child noted, the note torn, or too recent to judge
	}
	mark := reaperMark{Pid: note.Pid, Seen: time.Now()}
	if st, at, ok := procStat(note.Pid); !ok || st != 'Z' || !forkedAt(at, note.Start) {
		// Reaped (or never a zombie): the pid is gone or another's.
		_ = store.Save(attachment.HostFolder, attachment.ReaperTag, mark)
		_ = store.Remove(attachment.HostFolder, attachment.DeleterTag)
		return reapSeen
	}
	_ = store.Save(attachment.HostFolder, attachment.NoReaperTag, mark)
	fmt.Fprintf(os.Stderr, "bridge: the child that deleted a veth pair (pid %d) was still a zombie %s after it was forked: nothing on this host reaps orphaned processes (a container's PID 1 without an init?); DEL deletes veth pairs itself until the host's last attachment is gone (the mark: %s)\n",
		note.Pid, reapGrace, filepath.Join(store.Dir, attachment.HostFolder, attachment.NoReaperTag+".json"))
	return reapNone
}

// deleterNoting is host/deleter.json on its way: the file open and the
// note written out but for the pid, before the fork, so that what DEL
// does after it (each page it writes faults again, copied for the
// child) is a number appended and three system calls.
type deleterNoting struct {
	w    *state.Pending
	note []byte
}

// prepareNote starts the note of a child about to be forked; nil when
// the file cannot be opened. Concurrent DELs may tear the note (one
// temporary file): it is advisory, and a note that cannot be read counts
// as unknown.
func prepareNote(stateDir string) *deleterNoting {
	w, err := attachment.HostEnv(stateDir).Store.Prepare(attachment.HostFolder, attachment.DeleterTag)
	if err != nil {
		return nil
	}
	b := append(make([]byte, 0, 128), `{"Start":`...)
	b = strconv.AppendUint(b, bootTicks(), 10)
	b = append(b, `,"Forked":`...)
	b = strconv.AppendQuote(b, time.Now().Format(time.RFC3339Nano))
	return &deleterNoting{w: w, note: append(b, `,"Pid":`...)}
}

// done writes the note of the child forked as pid; 0 (no child) drops it.
func (d *deleterNoting) done(pid int) {
	if d == nil {
		return
	}
	if pid == 0 {
		d.w.Abort()
		return
	}
	_ = d.w.Commit(append(strconv.AppendInt(d.note, int64(pid), 10), '}'))
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
