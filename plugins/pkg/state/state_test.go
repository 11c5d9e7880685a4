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
