// Command entrycheck prints what a process linked with oneproc's entry
// stub looks like from main: its GOMAXPROCS, the distinct affinity masks
// of its threads, and its GOMAXPROCS after oneproc.Beside.
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/dockernet/cni-plugins/plugins/pkg/oneproc"
)

func main() {
	procs := runtime.GOMAXPROCS(0)
	masks := map[string]bool{}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	for _, t := range tasks {
		tid, _ := strconv.Atoi(t.Name())
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &set); err != nil {
			continue // the thread is gone
		}
		var cpus []string
		for c := 0; c < 1024; c++ {
			if set.IsSet(c) {
				cpus = append(cpus, strconv.Itoa(c))
			}
		}
		masks[strings.Join(cpus, ",")] = true
	}
	var list []string
	for m := range masks {
		list = append(list, m)
	}
	sort.Strings(list)
	oneproc.Beside()
	fmt.Printf("procs=%d masks=%s beside=%d\n", procs, strings.Join(list, ";"), runtime.GOMAXPROCS(0))
}
