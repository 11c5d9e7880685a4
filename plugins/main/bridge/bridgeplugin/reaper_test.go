package bridgeplugin

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
)

// The note written by hand reads back as the record it stands for; a
// note without a child leaves nothing, not even its temporary file.
func TestDeleterNote(t *testing.T) {
	dir := t.TempDir()
	store := attachment.HostEnv(dir).Store
	before, at := bootTicks(), time.Now()
	prepareNote(dir).done(4242)
	var got deleterNote
	if found, err := store.Load(attachment.HostFolder, attachment.DeleterTag, &got); !found || err != nil {
		t.Fatalf("the note: found %v, %v", found, err)
	}
	if got.Pid != 4242 || !forkedAt(got.Start, before) || got.Forked.Before(at.Add(-time.Second)) || got.Forked.After(time.Now()) {
		t.Errorf("the note reads back as %+v (clock %d ticks, %s before)", got, before, at)
	}

	store.Remove(attachment.HostFolder, attachment.DeleterTag)
	prepareNote(dir).done(0)
	if left, _ := filepath.Glob(filepath.Join(dir, attachment.HostFolder, "*")); len(left) > 0 {
		t.Errorf("a note without a child left %v", left)
	}
}

func TestForkedAt(t *testing.T) {
	for _, c := range []struct {
		start, noted uint64
		want         bool
	}{
		{500, 500, true},  // the same tick
		{501, 500, true},  // the next
		{499, 500, false}, // started before the note's clock: another process
		{500 + userHZ + 1, 500, false},
	} {
		if got := forkedAt(c.start, c.noted); got != c.want {
			t.Errorf("forkedAt(%d, %d) = %v, want %v", c.start, c.noted, got, c.want)
		}
	}
}

// A real child's start time, as /proc gives it, is the clock read
// before its fork or a tick after.
func TestBootTicksMatchAProcessStart(t *testing.T) {
	before := bootTicks()
	p, err := os.StartProcess("/bin/sleep", []string{"sleep", "1"}, &os.ProcAttr{})
	if err != nil {
		t.Skip("no /bin/sleep:", err)
	}
	defer p.Wait()
	defer p.Kill()
	if _, start, ok := procStat(p.Pid); !ok || !forkedAt(start, before) {
		t.Errorf("child started at %d ticks (ok %v), the clock read before its fork %d", start, ok, before)
	}
}
