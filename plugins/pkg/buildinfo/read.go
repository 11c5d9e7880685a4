package buildinfo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// ReadFile reads the Go build information of the ELF binary at path: what
// debug/buildinfo.ReadFile gives, for the 64-bit little-endian binaries
// of Go 1.18 and later (amd64, arm64). bridge asks it at every ADD (is the
// host-local beside me built as I was?); debug/buildinfo links the DWARF,
// Mach-O, PE and zstd readers, whose package inits every bridge process
// paid at start. Anything else is an error, and the caller does without.
func ReadFile(path string) (*debug.BuildInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := goBuildinfoSection(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return parseSection(data)
}

var errNotGo = errors.New("not a Go ELF binary of 64-bit little-endian form")

// goBuildinfoSection returns the start of the .go.buildinfo section.
func goBuildinfoSection(f io.ReaderAt) ([]byte, error) {
	hdr := make([]byte, 64)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		return nil, errNotGo
	}
	if !bytes.Equal(hdr[:4], []byte("\x7fELF")) || hdr[4] != 2 || hdr[5] != 1 {
		return nil, errNotGo
	}
	le := binary.LittleEndian
	shoff, shentsize, shnum, shstrndx := le.Uint64(hdr[0x28:]), int(le.Uint16(hdr[0x3a:])), int(le.Uint16(hdr[0x3c:])), int(le.Uint16(hdr[0x3e:]))
	if shentsize < 64 || shnum == 0 || shstrndx >= shnum || shnum > 1<<12 {
		return nil, errNotGo
	}
	table := make([]byte, shnum*shentsize)
	if _, err := f.ReadAt(table, int64(shoff)); err != nil {
		return nil, errNotGo
	}
	section := func(i int) (name uint32, off, size uint64) {
		s := table[i*shentsize:]
		return le.Uint32(s), le.Uint64(s[24:]), le.Uint64(s[32:])
	}
	_, strOff, strSize := section(shstrndx)
	if strSize > 1<<16 {
		return nil, errNotGo
	}
	names := make([]byte, strSize)
	if _, err := f.ReadAt(names, int64(strOff)); err != nil {
		return nil, errNotGo
	}
	for i := 0; i < shnum; i++ {
		name, off, size := section(i)
		if int(name) >= len(names) || !bytes.HasPrefix(names[name:], []byte(".go.buildinfo\x00")) {
			continue
		}
		// The header and two strings: version and module info (a few KB).
		data := make([]byte, min(size, 64<<10))
		n, err := f.ReadAt(data, int64(off))
		if n == 0 && err != nil {
			return nil, err
		}
		return data[:n], nil
	}
	return nil, errors.New("no .go.buildinfo section")
}

// parseSection reads the section's header (magic, pointer size, flags)
// and the Go version and module info that follow it inline.
func parseSection(data []byte) (*debug.BuildInfo, error) {
	const magic, headerLen, inline = "\xff Go buildinf:", 32, 0x2
	if len(data) < headerLen || string(data[:len(magic)]) != magic || data[15]&inline == 0 {
		return nil, errors.New("build information of a Go release before 1.18")
	}
	data = data[headerLen:]
	next := func() (string, bool) {
		n, w := binary.Uvarint(data)
		if w <= 0 || n > uint64(len(data)-w) {
			return "", false
		}
		s := string(data[w : w+int(n)])
		data = data[w+int(n):]
		return s, true
	}
	goVersion, ok1 := next()
	mod, ok2 := next()
	if !ok1 || !ok2 || goVersion == "" {
		return nil, errors.New("unreadable build information")
	}
	// Module info sits between two 16-byte markers.
	if len(mod) >= 33 && mod[len(mod)-17] == '\n' {
		mod = mod[16 : len(mod)-16]
	} else {
		mod = ""
	}
	bi, err := debug.ParseBuildInfo(mod)
	if err != nil {
		return nil, err
	}
	bi.GoVersion = goVersion
	return bi, nil
}
