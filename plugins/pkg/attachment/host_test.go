package attachment

import (
	"slices"
	"testing"
)

// The host's notes (the bridge's reaper records) stay while any
// attachment has its link record and go with the last one, as the
// forwarding record does; a host with none of its records is let be.
func TestReleaseHostDropsTheNotesWithTheLastAttachment(t *testing.T) {
	env, _ := newEnv(t)
	if done, err := env.ReleaseHost(); err != nil || done != nil {
		t.Fatalf("nothing held: %v %v", done, err)
	}
	for _, tag := range hostNotes {
		if err := env.Store.Save(HostFolder, tag, map[string]int{"Pid": 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := env.Store.Save(LinkKind, "busy", map[string]string{}); err != nil {
		t.Fatal(err)
	}
	held := func() []string {
		tags, err := env.Store.List(HostFolder)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(tags)
		return tags
	}
	if _, err := env.ReleaseHost(); err != nil {
		t.Fatal(err)
	}
	if got := held(); !slices.Equal(got, []string{DeleterTag, NoReaperTag, ReaperTag}) {
		t.Errorf("with an attachment left, the host holds %v", got)
	}
	if err := env.Store.Remove(LinkKind, "busy"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.ReleaseHost(); err != nil {
		t.Fatal(err)
	}
	if got := held(); len(got) != 0 {
		t.Errorf("the last attachment gone, the host still holds %v", got)
	}
}

// Reaps: the reaper mark alone says yes; no mark, or the noreaper mark
// beside it, says no.
func TestReaps(t *testing.T) {
	for _, c := range []struct {
		marks []string
		want  bool
	}{
		{nil, false},
		{[]string{ReaperTag}, true},
		{[]string{NoReaperTag}, false},
		{[]string{ReaperTag, NoReaperTag}, false},
		{[]string{DeleterTag}, false},
	} {
		env := HostEnv(t.TempDir())
		for _, m := range c.marks {
			if err := env.Store.Save(HostFolder, m, struct{}{}); err != nil {
				t.Fatal(err)
			}
		}
		if got := env.Reaps(); got != c.want {
			t.Errorf("marks %v: Reaps() = %v, want %v", c.marks, got, c.want)
		}
	}
}
