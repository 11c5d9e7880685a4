package oneproc

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

func TestDisableTHP(t *testing.T) {
	for _, tc := range []struct {
		godebug string
		off     bool
	}{
		{"", false},
		{"disablethp=1", true},
		{"madvdontneed=1,disablethp=1", true},
		{"disablethp=1,gctrace=1", true},
		{"disablethp=1,disablethp=0", false},
		{"disablethp=0,disablethp=1", true},
		{"disablethp=10", false},
		{",disablethp=1,", true},
	} {
		if got := disableTHP(tc.godebug); got != tc.off {
			t.Errorf("disableTHP(%q) = %t, want %t", tc.godebug, got, tc.off)
		}
	}
}

// hugeCheck prints what hugeHeap was told in this fresh process's init
// and the kB of huge pages in the mapping that held the heap's front
// then.
func hugeCheck() {
	kb, err := anonHugeKB(hugeFront)
	if err != nil {
		fmt.Println("error", err)
		return
	}
	errno := 0
	if e, ok := hugeErr.(syscall.Errno); ok {
		errno = int(e)
	}
	fmt.Printf("%d %d\n", errno, kb)
}

// anonHugeKB is the AnonHugePages of the mapping in /proc/self/smaps
// that holds addr.
func anonHugeKB(addr uintptr) (int, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x ", &lo, &hi); n == 2 {
			in = lo <= addr && addr < hi
			continue
		}
		var kb int
		if in && strings.HasPrefix(line, "AnonHugePages:") {
			if _, err := fmt.Sscanf(line, "AnonHugePages: %d kB", &kb); err != nil {
				return 0, err
			}
			return kb, nil
		}
	}
	return 0, fmt.Errorf("no mapping holds %#x", addr)
}

// After init, the 2 MiB around the heap's front is one huge page; with
// GODEBUG=disablethp=1 (the control) it is small pages, where the kernel
// gives huge pages only to ranges that ask.
func TestHugeHeap(t *testing.T) {
	setting, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || strings.Contains(string(setting), "[never]") {
		t.Skipf("this kernel gives no transparent huge pages (%q, %v)", setting, err)
	}
	check := func(env ...string) (errno syscall.Errno, kb int) {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(append(os.Environ(), "ONEPROC_HUGE_CHECK=1"), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("check %v: %v\n%s", env, err, out)
		}
		var e int
		if _, err := fmt.Sscanf(string(out), "%d %d", &e, &kb); err != nil {
			t.Fatalf("check %v printed %q", env, out)
		}
		return syscall.Errno(e), kb
	}
	errno, kb := check()
	switch {
	case errno == syscall.EINVAL:
		t.Skipf("this kernel does not collapse a range on request (MADV_COLLAPSE, Linux 6.1): %v", errno)
	case errno == syscall.EAGAIN || errno == syscall.ENOMEM:
		// No huge page free at the moment: the heap stays small pages.
		for try := 0; try < 5 && errno != 0; try++ {
			errno, kb = check()
		}
	}
	if errno != 0 || kb < hugePageSize>>10 {
		t.Errorf("after init: kernel said %v, %d kB of huge pages at the heap's front, want at least %d", errno, kb, hugePageSize>>10)
	}
	errno, kb = check("GODEBUG=disablethp=1")
	if errno != errTHPOff {
		t.Errorf("with GODEBUG=disablethp=1: hugeHeap's answer %v, want %v (not asked)", errno, errTHPOff)
	}
	if strings.Contains(string(setting), "[madvise]") && kb != 0 {
		t.Errorf("control, with GODEBUG=disablethp=1: %d kB of huge pages at the heap's front, want none", kb)
	}
}
