package hostlocal_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// Separate plugin processes racing on one small range: every address goes to
// exactly one of them and the rest get a clean "try again" error.
func TestParallelProcesses(t *testing.T) {
	testenv.RequireRoot(t)
	bin := testenv.Bin(t)
	prefix := testenv.Prefix()
	ns := testenv.NewNS(t, prefix+"-host")
	ctr := testenv.NewNS(t, prefix+"-ctr")
	dir := t.TempDir()
	conf := []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"race","ipam":{"type":"host-local","dataDir":%q,"subnet":"10.88.0.0/27"}}`, dir))
	const procs = 40 // a /27 has 29 free addresses (.1 is the gateway, .31 broadcast)
	var wg sync.WaitGroup
	results := make([]string, procs)
	errs := make([]error, procs)
	for i := 0; i < procs; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			out, err := ns.Exec(bin, "host-local", testenv.Call{Command: "ADD", ContainerID: fmt.Sprintf("c%d", i), Netns: ctr.Path(), IfName: "eth0", Conf: conf})
			errs[i] = err
			var r struct {
				IPs []struct {
					Address string `json:"address"`
				} `json:"ips"`
			}
			if err == nil && json.Unmarshal(out, &r) == nil && len(r.IPs) == 1 {
				results[i] = r.IPs[0].Address
			}
		}(i)
	}
	wg.Wait()
	seen := map[string]int{}
	ok, exhausted := 0, 0
	for i := range results {
		if errs[i] != nil {
			if e, isCNI := errs[i].(*types.Error); isCNI && e.Code == 11 {
				exhausted++
				continue
			}
			t.Errorf("process %d: %v", i, errs[i])
			continue
		}
		if j, dup := seen[results[i]]; dup {
			t.Errorf("%s handed to processes %d and %d", results[i], j, i)
		}
		seen[results[i]] = i
		ok++
	}
	if ok != 29 || exhausted != procs-29 {
		t.Errorf("%d allocations and %d exhausted errors, want 29 and %d", ok, exhausted, procs-29)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "race", "10.*"))
	if len(files) != ok {
		t.Errorf("%d reservation files for %d allocations", len(files), ok)
	}
	for i := 0; i < procs; i++ {
		if _, err := ns.Exec(bin, "host-local", testenv.Call{Command: "DEL", ContainerID: fmt.Sprintf("c%d", i), Netns: ctr.Path(), IfName: "eth0", Conf: conf}); err != nil {
			t.Fatalf("DEL c%d: %v", i, err)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "race", "10.*")); len(files) != 0 {
		t.Errorf("reservations left after DEL: %v", files)
	}
	_ = os.RemoveAll(dir)
}

func TestMain(m *testing.M) { testenv.Main(m) }
