package oneproc

import (
	"math/bits"
	"syscall"
	"unsafe"
)

// Entry is the symbol to link plugin binaries with (go build -ldflags
// "-E ..."): the process then starts on one CPU and one P, without the
// runtime's second P and the thread it wakes for it before any package's
// init can set GOMAXPROCS. Binaries linked without it behave the same,
// less that saving.
const Entry = "github.com/dockernet/cni-plugins/plugins/pkg/oneproc.entry"

const (
	maskWords = 128 // 8192 CPUs, as the kernel's largest NR_CPUS
	maskBytes = maskWords * 8
)

// Written by entry, before the runtime starts.
var (
	startMask    [maskWords]uint64 // the affinity the process was started with
	startMaskLen uintptr           // bytes of it the kernel wrote
	startCPU     uint32
	pinMask      [maskWords]uint64
	pinned       bool // entry pinned the starting thread; restoreAffinity undoes it
)

// entry is in entry_linux_amd64.s; only the linker's -E refers to it.
func entry()

// startCPUs is how many CPUs the process was started with, when entry
// pinned it (the runtime then counts one); 0 otherwise.
func startCPUs() int {
	if !pinned {
		return 0
	}
	n := 0
	for _, w := range startMask[:startMaskLen/8] {
		n += bits.OnesCount64(w)
	}
	return n
}

// restoreAffinity gives every thread of the process the affinity it was
// started with: the runtime has made threads (sysmon, maybe an M) from the
// pinned one before any init runs, and each inherited the pin. Threads made
// after this inherit the restored mask.
func restoreAffinity() {
	if !pinned {
		return
	}
	setAffinity(0) // this thread, even where /proc cannot be read
	self := syscall.Gettid()
	forEachThread(func(tid int) {
		if tid != self {
			setAffinity(tid)
		}
	})
}

func setAffinity(tid int) {
	syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, uintptr(tid), startMaskLen, uintptr(unsafe.Pointer(&startMask[0])))
}

// forEachThread calls fn with the id of each thread in /proc/self/task,
// read with the raw calls this package's early init can use.
func forEachThread(fn func(tid int)) {
	fd, err := syscall.Open("/proc/self/task", syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer syscall.Close(fd)
	var buf [1024]byte
	for {
		n, err := syscall.ReadDirent(fd, buf[:])
		if err != nil || n <= 0 {
			return
		}
		for off := 0; off+19 < n; {
			reclen := int(buf[off+16]) | int(buf[off+17])<<8
			if reclen == 0 || off+reclen > n {
				return
			}
			tid := 0
			for _, c := range buf[off+19 : off+reclen] {
				if c < '0' || c > '9' {
					break
				}
				tid = tid*10 + int(c-'0')
			}
			if tid > 0 {
				fn(tid)
			}
			off += reclen
		}
	}
}
