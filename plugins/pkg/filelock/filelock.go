// Package filelock serialises plugin processes with flock(2). A lock held by
// a process that dies is released by the kernel, so a crash never wedges
// the next ADD or DEL.
package filelock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Lock is a lock on one path: exclusive, or shared with other shared holders.
type Lock struct{ f *os.File }

// Acquire blocks until it holds an exclusive lock on path, creating the file
// (and its parent directory) if needed. A directory path locks the directory itself.
func Acquire(path string) (*Lock, error) { return lock(path, unix.LOCK_EX) }

// AcquireShared blocks until it holds a shared lock on path: any number
// of shared holders at once, none while an exclusive one holds it.
func AcquireShared(path string) (*Lock, error) { return lock(path, unix.LOCK_SH) }

// ErrHeld is TryAcquire's answer when another process holds the lock.
var ErrHeld = errors.New("held by another process")

// TryAcquire takes the lock on path if no other process holds it, and
// returns ErrHeld (wrapped) at once if one does.
func TryAcquire(path string) (*Lock, error) { return lock(path, unix.LOCK_EX|unix.LOCK_NB) }

func lock(path string, how int) (*Lock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create lock directory for %s: %w", path, err)
	}
	var f *os.File
	var err error
	if st, serr := os.Stat(path); serr == nil && st.IsDir() {
		f, err = os.Open(path)
	} else {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err == unix.EWOULDBLOCK {
		err = ErrHeld
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// Release drops the lock. It is safe to call on a nil Lock.
func (l *Lock) Release() {
	if l == nil || l.f == nil {
		return
	}
	_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	_ = l.f.Close()
	l.f = nil
}
