package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/containernetworking/cni/libcni"
)

// The cluster bench times a chain ADD and DEL the way a runtime on the
// node makes them: from a process inside the node's mount and network
// namespaces that execs each plugin itself, as containerd does. Timed
// from the test process, every plugin the chain starts would first go
// through nsenter, the harness's way into a node (about 3.5 ms per exec
// on the bench machine, the same for both sets, so it pulled the ratio
// towards 1). The driver is this test binary, run again with
// chainDriverEnv set: TestMain hands it to runChainDriver.
const chainDriverEnv = "DNET_CHAIN_DRIVER"

// chainRequest is what the driver reads on stdin: one ADD, then its DEL.
type chainRequest struct {
	CNIPath  []string
	CacheDir string
	ConfList []byte // the conflist as the node's runtime read it
	RT       libcni.RuntimeConf
}

// chainTiming is what the driver prints: each call's wall time.
type chainTiming struct{ Add, Del time.Duration }

// runChainDriver serves one chainRequest; its exit code is the process's.
func runChainDriver() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "chain driver:", err)
		return 1
	}
	os.Unsetenv(chainDriverEnv) // the plugins inherit the environment
	var req chainRequest
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		return fail(err)
	}
	list, err := libcni.ConfListFromBytes(req.ConfList)
	if err != nil {
		return fail(err)
	}
	cni := libcni.NewCNIConfigWithCacheDir(req.CNIPath, req.CacheDir, nil)
	start := time.Now()
	if _, err := cni.AddNetworkList(context.Background(), list, &req.RT); err != nil {
		return fail(fmt.Errorf("ADD: %w", err))
	}
	var times chainTiming
	times.Add = time.Since(start)
	start = time.Now()
	if err := cni.DelNetworkList(context.Background(), list, &req.RT); err != nil {
		return fail(fmt.Errorf("DEL: %w", err))
	}
	times.Del = time.Since(start)
	if err := json.NewEncoder(os.Stdout).Encode(times); err != nil {
		return fail(err)
	}
	return 0
}

// timeChain adds p to n's network and deletes it again through the
// driver inside n's namespaces, and returns how long each call took.
func (n *node) timeChain(p *pod) (chainTiming, error) {
	var times chainTiming
	self, err := os.Executable()
	if err != nil {
		return times, err
	}
	req, err := json.Marshal(chainRequest{CNIPath: []string{n.c.cniBin}, CacheDir: n.cacheDir(), ConfList: n.list.Bytes, RT: *p.rt()})
	if err != nil {
		return times, err
	}
	cmd := n.inNetns(n.ns.Path(), self)
	cmd.Env = append(os.Environ(), chainDriverEnv+"=1")
	cmd.Stdin = bytes.NewReader(req)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return times, fmt.Errorf("%v: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return times, json.Unmarshal(out, &times)
}
