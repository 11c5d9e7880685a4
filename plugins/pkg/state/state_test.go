package state

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	s := New(t.TempDir())
	type rec struct{ Backend string }
	if ok, err := s.Load("portmap", "abc", &rec{}); ok || err != nil {
		t.Fatalf("empty store: %v %v", ok, err)
	}
	if err := s.Save("portmap", "abc", rec{"nftables"}); err != nil {
		t.Fatal(err)
	}
	var got rec
	if ok, err := s.Load("portmap", "abc", &got); !ok || err != nil || got.Backend != "nftables" {
		t.Fatalf("load: %v %v %+v", ok, err, got)
	}
	if err := s.Remove("portmap", "abc"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("portmap", "abc"); err != nil {
		t.Fatalf("second remove: %v", err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "portmap", "bad.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("portmap", "bad", &got); err == nil {
		t.Fatal("corrupt record loaded")
	}
}

// A prepared write lands whole on Commit; Abort leaves the record as it
// was and no temporary file.
func TestPrepare(t *testing.T) {
	s := New(t.TempDir())
	type rec struct{ Pid int }
	if err := s.Save("host", "note", rec{1}); err != nil {
		t.Fatal(err)
	}
	w, err := s.Prepare("host", "note")
	if err != nil {
		t.Fatal(err)
	}
	w.Abort()
	var got rec
	if ok, err := s.Load("host", "note", &got); !ok || err != nil || got.Pid != 1 {
		t.Errorf("after Abort: %v %v %+v, want the record as it was", ok, err, got)
	}
	if w, err = s.Prepare("host", "note"); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit([]byte(`{"Pid":2}`)); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Load("host", "note", &got); !ok || err != nil || got.Pid != 2 {
		t.Errorf("after Commit: %v %v %+v", ok, err, got)
	}
	if left, _ := filepath.Glob(filepath.Join(s.Dir, "host", "*.tmp*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
