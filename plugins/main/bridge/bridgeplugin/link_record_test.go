package bridgeplugin

import (
	"os"
	"path/filepath"
	"testing"
)

// GC removes a link record's temporary file that a crashed ADD left,
// unless its attachment is valid or it names another network
// (attachment.CollectTemps, wired into gcLinks).
func TestGCLinkTemps(t *testing.T) {
	dir := t.TempDir()
	links := filepath.Join(dir, "link")
	if err := os.MkdirAll(links, 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"crashed.json.tmp": "",
		"mine.json.tmp":    `{"owner":{"network":"docker0"}}`,
		"kept.json.tmp":    "",
		"other.json.tmp":   `{"owner":{"network":"podman"}}`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(links, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	n := &NetConf{StateDir: dir}
	n.Name = "docker0"
	if err := gcLinks(n, map[string]bool{"kept": true}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"crashed.json.tmp": false, "mine.json.tmp": false, "kept.json.tmp": true, "other.json.tmp": true} {
		_, err := os.Stat(filepath.Join(links, name))
		if got := err == nil; got != want {
			t.Errorf("%s there: %v, want %v", name, got, want)
		}
	}
}
