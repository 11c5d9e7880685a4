package oneproc

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"unsafe"
)

// TestMain lets TestPrefault run its check in a fresh process of this
// test binary, whose heap nothing has collected yet, as a plugin's.
func TestMain(m *testing.M) {
	if mode := os.Getenv("ONEPROC_PREFAULT_CHECK"); mode != "" {
		prefaultCheck(mode)
		os.Exit(0)
	}
	if os.Getenv("ONEPROC_HUGE_CHECK") != "" {
		hugeCheck()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var checkSink []byte

// prefaultCheck prints, for a fresh heap object, how many of its pages are
// resident before anything writes them and of how many; with "on", after
// prefault(1 MiB), also whether the object lies in the filled range.
func prefaultCheck(mode string) {
	size := 1 << 20 // larger than what init filled: most of it is fresh
	var start, end uintptr
	if mode == "on" {
		var err error
		if start, end, err = prefault(1 << 20); err != nil {
			fmt.Println("error", err)
			return
		}
		size = 128 << 10
	}
	checkSink = make([]byte, size)
	at := uintptr(unsafe.Pointer(unsafe.SliceData(checkSink)))
	vec := make([]byte, size/os.Getpagesize())
	if _, _, errno := syscall.Syscall(syscall.SYS_MINCORE, at, uintptr(size), uintptr(unsafe.Pointer(unsafe.SliceData(vec)))); errno != 0 {
		fmt.Println("error", errno)
		return
	}
	resident := 0
	for _, v := range vec {
		resident += int(v & 1)
	}
	fmt.Printf("%d %d %t\n", resident, len(vec), at >= start && at+uintptr(size) <= end)
}

// After prefault, the heap's next objects lie on pages the kernel has
// filled already; without it (the control), most of a fresh object's
// pages are not there until written. The heap starts at a random page, so
// a run whose object falls past the end of the filled range (the end of
// the runtime's chunk) proves nothing and is made again.
func TestPrefault(t *testing.T) {
	if _, _, err := prefault(os.Getpagesize()); err != nil {
		t.Skipf("this kernel does not fill pages on request (MADV_POPULATE_WRITE, Linux 5.14): %v", err)
	}
	check := func(mode string) (resident, pages int, inside bool) {
		cmd := exec.Command(os.Args[0])
		// Small pages, as where the kernel gives no huge ones: init's
		// huge page would make the control's fresh object resident.
		cmd.Env = append(os.Environ(), "ONEPROC_PREFAULT_CHECK="+mode, "GODEBUG=disablethp=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("check %s: %v\n%s", mode, err, out)
		}
		if _, err := fmt.Sscanf(string(out), "%d %d %t", &resident, &pages, &inside); err != nil {
			t.Fatalf("check %s printed %q", mode, out)
		}
		return resident, pages, inside
	}
	conclusive := false
	for try := 0; try < 10 && !conclusive; try++ {
		resident, pages, inside := check("on")
		if !inside {
			continue
		}
		conclusive = true
		if resident != pages {
			t.Errorf("after prefault: %d of the object's %d pages resident, want all", resident, pages)
		}
	}
	if !conclusive {
		t.Error("in 10 fresh processes the object after prefault never lay in the filled range")
	}
	if resident, pages, _ := check("off"); resident > pages/4 {
		t.Errorf("control, without prefault: %d of a fresh object's %d pages resident before any write, want at most a quarter (what init filled)", resident, pages)
	}
}
