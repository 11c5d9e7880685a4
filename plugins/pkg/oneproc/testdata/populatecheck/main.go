// Command populatecheck prints how much of its own binary's mappings the
// kernel had mapped by main: the resident size of the code and of the
// read-only data, and the written (anonymous) size of the data, each out
// of the mapping's size, in KiB, and what the kernel said to oneproc's
// entry stub.
package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/dockernet/cni-plugins/plugins/pkg/oneproc"
)

// Code linked but never run, as most of a plugin's is: the kernel maps
// none of it unless asked to.
var linked = http.DefaultClient.Do

func main() {
	self, err := os.Executable()
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	defer f.Close()
	// Counted at once, before anything else of this program runs.
	type vma struct {
		perms, path     string
		size, rss, anon int
	}
	var vmas []*vma
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 && strings.Contains(fields[0], "-") {
			v := &vma{perms: fields[1]}
			if len(fields) >= 6 {
				v.path = fields[5]
			}
			vmas = append(vmas, v)
			continue
		}
		if len(vmas) == 0 || len(fields) < 2 {
			continue
		}
		n, _ := strconv.Atoi(fields[1])
		switch fields[0] {
		case "Size:":
			vmas[len(vmas)-1].size = n
		case "Rss:":
			vmas[len(vmas)-1].rss = n
		case "Anonymous:":
			vmas[len(vmas)-1].anon = n
		}
	}
	var code, rodata, data *vma
	for _, v := range vmas {
		if v.path != self {
			continue
		}
		switch v.perms {
		case "r-xp":
			code = v
		case "r--p":
			rodata = v
		case "rw-p":
			data = v
		}
	}
	if code == nil || rodata == nil || data == nil {
		fmt.Println("error: no code, read-only data or data mapping of", self)
		os.Exit(1)
	}
	fmt.Printf("code=%d/%d rodata=%d/%d data=%d/%d populated=%v\n", code.rss, code.size, rodata.rss, rodata.size, data.anon, data.size, oneproc.Populated())
}
