// Package state keeps, per attachment, what a plugin installed: the record
// a DEL needs when the runtime sends no prevResult, and what GC and rule
// restoration will read. It stores and returns plain Go errors; the plugin
// layer (plugins/pkg/attachment) gives them CNI codes.
//
// Layout: <dir>/<kind>/<owner tag>.json, written atomically (temp + rename).
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DefaultDir is used when a config sets no stateDir.
const DefaultDir = "/var/lib/cni/dockernet"

// Store is one state directory.
type Store struct{ Dir string }

// New returns the store at dir, or at DefaultDir when dir is empty.
func New(dir string) Store {
	if dir == "" {
		dir = DefaultDir
	}
	return Store{Dir: dir}
}

func (s Store) path(kind, tag string) string { return filepath.Join(s.Dir, kind, tag+".json") }

// Save writes v as the record of kind for tag. Its temporary file has a
// fixed name, so a crash leaves at most one, which the next write of the
// record replaces; one process at a time writes a record.
func (s Store) Save(kind, tag string, v any) error { return s.save(kind, tag, v, false) }

// SaveShared is Save for a record that several processes may write at
// once (a network's, by its first ADDs): each writes a temporary file of
// its own, so each rename finds its file. A crash can leave one behind
// in the record's folder, which goes with the folder.
func (s Store) SaveShared(kind, tag string, v any) error { return s.save(kind, tag, v, true) }

func (s Store) save(kind, tag string, v any, shared bool) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	w, err := s.prepare(kind, tag, shared)
	if err != nil {
		return err
	}
	return w.Commit(data)
}

// Pending is a record write whose file is open before its content is
// known: Commit writes the content and puts the file in the record's
// place. For a record written right after a fork (a DEL's child, noted
// by its pid), when each page the process wrote before faults again:
// the directory, the file and most of the content are made before.
type Pending struct {
	f         *os.File
	tmp, path string
}

// Prepare opens the temporary file of kind's record for tag (Save's).
func (s Store) Prepare(kind, tag string) (*Pending, error) { return s.prepare(kind, tag, false) }

func (s Store) prepare(kind, tag string, shared bool) (*Pending, error) {
	p := s.path(kind, tag)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	var f *os.File
	var err error
	if shared {
		f, err = os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".tmp*")
	} else {
		f, err = os.OpenFile(p+".tmp", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("write state %s: %w", p, err)
	}
	return &Pending{f: f, tmp: f.Name(), path: p}, nil
}

// Commit writes data and renames the file into the record's place; on
// an error the temporary file goes.
func (w *Pending) Commit(data []byte) error {
	_, err := w.f.Write(data)
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(w.tmp, w.path)
	}
	if err != nil {
		_ = os.Remove(w.tmp)
		return fmt.Errorf("write state %s: %w", w.path, err)
	}
	return nil
}

// Abort drops the write: the record stays as it was.
func (w *Pending) Abort() {
	_ = w.f.Close()
	_ = os.Remove(w.tmp)
}

// Has reports whether the record exists, reading nothing: for a record
// whose presence is what it says.
func (s Store) Has(kind, tag string) bool {
	_, err := os.Stat(s.path(kind, tag))
	return err == nil
}

// Load reads the record into v; false when there is none.
func (s Store) Load(kind, tag string, v any) (bool, error) {
	data, err := os.ReadFile(s.path(kind, tag))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read state: %w", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("state %s is corrupt: %w", s.path(kind, tag), err)
	}
	return true, nil
}

// Remove deletes the record, and a temporary file a crashed Save left of
// it; a missing one is not an error.
func (s Store) Remove(kind, tag string) error {
	_ = os.Remove(s.path(kind, tag) + ".tmp")
	err := os.Remove(s.path(kind, tag))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove state: %w", err)
	}
	return nil
}

// Temp is the temporary file a Save that crashed left of tag's record:
// Data is whatever the crash let it hold, maybe nothing.
type Temp struct {
	Tag  string
	Data []byte
}

// tempSuffix ends the fixed-name temporary file of Save; SaveShared's
// have a random tail and go with their folder.
const tempSuffix = ".json.tmp"

// Temps lists kind's temporary files left by Saves that crashed.
func (s Store) Temps(kind string) ([]Temp, error) {
	paths, err := filepath.Glob(filepath.Join(s.Dir, kind, "*"+tempSuffix))
	if err != nil {
		return nil, err
	}
	var out []Temp
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue // its Save finished meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("read state: %w", err)
		}
		out = append(out, Temp{Tag: strings.TrimSuffix(filepath.Base(p), tempSuffix), Data: data})
	}
	return out, nil
}

// RemoveTemp deletes tag's temporary file of kind; a missing one is not
// an error.
func (s Store) RemoveTemp(kind, tag string) error {
	err := os.Remove(filepath.Join(s.Dir, kind, tag+tempSuffix))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove state: %w", err)
	}
	return nil
}

// List returns the tags that have a record of kind.
func (s Store) List(kind string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(s.Dir, kind))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list state: %w", err)
	}
	var tags []string
	for _, e := range entries {
		if tag, ok := strings.CutSuffix(e.Name(), ".json"); ok && e.Type().IsRegular() {
			tags = append(tags, tag)
		}
	}
	return tags, nil
}
