package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"golang.org/x/sys/unix"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// variant is one plugin set and backend under test.
type variant struct {
	name    string // ours-nftables, ours-iptables, ref-nftables, ref-iptables
	bin     string // directory with bridge, host-local, portmap
	backend string
}

// world is one variant's private topology, like the end-to-end tests':
// a host netns running the plugins, a client netns linked to it
// (192.0.2.2 -> host 192.0.2.1) and container netns off the bridge.
type world struct {
	v        variant
	name     string
	hostNS   *testenv.NS
	clientNS *testenv.NS
	host     ns.NetNS // handles for running code inside them
	client   ns.NetNS
	dir      string
	cni      *libcni.CNIConfig
	list     *libcni.NetworkConfigList // the measured chain
	fillList *libcni.NetworkConfigList // what fill adds: see fillMasq
	fillers  []*container
	seq      int
	twin     bool // the empty host measured alongside a filled one
	mu       sync.Mutex
}

type container struct {
	ns   ns.NetNS
	id   string
	ip   string
	maps []mapping
}

type mapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
}

// label names the world in results: its variant, or the variant's empty twin.
func (w *world) label() string {
	if w.twin {
		return w.v.name + "/empty"
	}
	return w.v.name
}

func newWorld(v variant, tag string) (w *world, err error) {
	w = &world{v: v, name: tag}
	defer func() {
		if err != nil {
			w.destroy()
		}
	}()
	if w.dir, err = os.MkdirTemp("", "dnet-bench-"+v.name+"-"); err != nil {
		return nil, err
	}
	if w.hostNS, err = testenv.AddNS(tag + "-host"); err != nil {
		return nil, err
	}
	if w.clientNS, err = testenv.AddNS(tag + "-client"); err != nil {
		return nil, err
	}
	if err := testenv.Connect(w.hostNS, "eth0", "192.0.2.1/24", w.clientNS, "eth0", "192.0.2.2/24"); err != nil {
		return nil, err
	}
	// A container host forwards already (Docker, or the node's sysctl.d,
	// turned it on): the bridge then neither turns it on nor guards it,
	// and every chain measured is the steady case.
	if out, err := w.hostNS.Run("sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
		return nil, fmt.Errorf("host forwarding: %v: %s", err, out)
	}
	// For the "direct" baseline the client routes to the containers.
	if out, err := w.clientNS.Run("ip", "route", "add", "172.17.0.0/16", "via", "192.0.2.1"); err != nil {
		return nil, fmt.Errorf("client route: %v: %s", err, out)
	}
	if w.host, err = ns.GetNS(w.hostNS.Path()); err != nil {
		return nil, err
	}
	if w.client, err = ns.GetNS(w.clientNS.Path()); err != nil {
		return nil, err
	}
	// gatewayMode nat-unprotected lets the direct baseline's client route
	// to the containers; every packet still crosses the same forward rules,
	// and only a packet that was not DNATed reaches the set lookup it skips.
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       "bench",
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": "docker0", "isGateway": true, "isDefaultGateway": true,
				"ipMasq": true, "hairpinMode": true, "ipMasqBackend": v.backend, "stateDir": filepath.Join(w.dir, "state"),
				"gatewayMode": "nat-unprotected",
				"ipam": map[string]any{"type": "host-local", "dataDir": filepath.Join(w.dir, "ipam"),
					"ranges": []any{[]any{map[string]any{"subnet": "172.17.0.0/16", "gateway": "172.17.0.1"}}}},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]any{"portMappings": true}, "snat": true,
				"backend": v.backend, "stateDir": filepath.Join(w.dir, "state")},
		},
	}
	raw, _ := json.Marshal(conf)
	if w.fillList, err = libcni.ConfListFromBytes(raw); err != nil {
		return nil, err
	}
	if !fillMasq {
		conf["plugins"].([]any)[0].(map[string]any)["ipMasq"] = false
		raw, _ := json.Marshal(conf)
		if w.fillList, err = libcni.ConfListFromBytes(raw); err != nil {
			return nil, err
		}
		conf["plugins"].([]any)[0].(map[string]any)["ipMasq"] = true
	}
	// Only the measured chain gets the allowlist: the containers present
	// are there for their mappings.
	if allowlist > 0 {
		conf["plugins"].([]any)[1].(map[string]any)["allowedSources"] = allowlistOf(allowlist)
	}
	raw, _ = json.Marshal(conf)
	if w.list, err = libcni.ConfListFromBytes(raw); err != nil {
		return nil, err
	}
	w.cni = libcni.NewCNIConfigWithCacheDir([]string{v.bin}, filepath.Join(w.dir, "cache"), nil)
	return w, nil
}

// destroy removes the whole world at once: deleting a netns takes its
// bridge, veths and rules with it, far faster than a DEL per container.
func (w *world) destroy() {
	for _, c := range w.fillers {
		c.release()
	}
	for _, h := range []ns.NetNS{w.host, w.client} {
		if h != nil {
			_ = h.Close()
		}
	}
	for _, n := range []*testenv.NS{w.hostNS, w.clientNS} {
		if n != nil {
			_ = n.Delete()
		}
	}
	_ = os.RemoveAll(w.dir)
}

// newContainer makes a container netns (not yet attached).
func (w *world) newContainer(maps []mapping) (*container, error) {
	n, err := testutils.NewNS()
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.seq++
	id := fmt.Sprintf("%s-%06d", w.name, w.seq)
	w.mu.Unlock()
	return &container{ns: n, id: id, maps: maps}, nil
}

// release closes and unmounts the container netns. The file must be
// closed first: unmounting a namespace file still open fails with EBUSY.
func (c *container) release() {
	path := c.ns.Path()
	_ = c.ns.Close()
	if err := unix.Unmount(path, 0); err != nil {
		_ = unix.Unmount(path, unix.MNT_DETACH)
	}
	_ = os.Remove(path)
}

func (w *world) rt(c *container) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: c.id, NetNS: c.ns.Path(), IfName: "eth0",
		CapabilityArgs: map[string]any{"portMappings": c.maps}}
}

// fillMasq makes fill add the measured chain. By default its containers
// publish their 4 ports but do not masquerade outbound: hostPort scaling
// is what the workloads with containers present are about, and each
// masquerade is an iptables chain of its own in the reference, which would
// make its fill the longest part of make bench.
var fillMasq bool

// allowlist, when positive, is the size of the source allowlist
// (allowedSources) every published port gets: the client's address, the
// containers' subnet and the host's loopback, and distinct /32s in
// 10.0.0.0/8 that no connection comes from.
var allowlist int

func allowlistOf(n int) []string {
	out := []string{"192.0.2.2", "172.17.0.0/16", "127.0.0.0/8"}
	for i := 0; len(out) < n; i++ {
		out = append(out, fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
	}
	return out
}

// add runs the chain ADD inside the host netns and returns its duration.
// The plugins are forked from a thread that sits in the host netns.
func (w *world) add(c *container) (time.Duration, error) { return w.addWith(w.list, c) }

func (w *world) addWith(list *libcni.NetworkConfigList, c *container) (time.Duration, error) {
	var d time.Duration
	err := w.host.Do(func(ns.NetNS) error {
		start := time.Now()
		res, err := w.cni.AddNetworkList(context.Background(), list, w.rt(c))
		d = time.Since(start)
		if err != nil {
			return err
		}
		cur, err := current.NewResultFromResult(res)
		if err != nil || len(cur.IPs) == 0 {
			return fmt.Errorf("ADD result without address: %v", err)
		}
		c.ip = cur.IPs[0].Address.IP.String()
		return nil
	})
	return d, err
}

func (w *world) del(c *container) (time.Duration, error) { return w.delWith(w.list, c) }

func (w *world) delWith(list *libcni.NetworkConfigList, c *container) (time.Duration, error) {
	var d time.Duration
	err := w.host.Do(func(ns.NetNS) error {
		start := time.Now()
		err := w.cni.DelNetworkList(context.Background(), list, w.rt(c))
		d = time.Since(start)
		return err
	})
	return d, err
}

// newFiller makes a container netns with the 4 mappings every filler has.
func (w *world) newFiller(nextPort func() int) (*container, error) {
	ms := make([]mapping, 4)
	for j := range ms {
		ms[j] = mapping{HostPort: nextPort(), ContainerPort: 80, Protocol: "tcp"}
	}
	return w.newContainer(ms)
}

// fill attaches containers (4 mappings each) until the world has n,
// `workers` at a time.
// nextPort is called from this goroutine only.
func (w *world) fill(n, workers int, nextPort func() int) error {
	need := n - len(w.fillers)
	if need <= 0 {
		return nil
	}
	workers = max(workers, 1)
	jobs := make(chan *container)
	errs := make(chan error, need)
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range jobs {
				_, err := w.addWith(w.fillList, c)
				if err != nil { // a contended backend may refuse once; retry before giving up
					_, _ = w.delWith(w.fillList, c)
					_, err = w.addWith(w.fillList, c)
				}
				errs <- err
			}
		}()
	}
	var made []*container
	for i := 0; i < need; i++ {
		c, err := w.newFiller(nextPort)
		if err != nil {
			close(jobs)
			return err
		}
		made = append(made, c)
		jobs <- c
	}
	close(jobs)
	wg.Wait()
	close(errs)
	w.fillers = append(w.fillers, made...)
	for err := range errs {
		if err != nil {
			return fmt.Errorf("%s: filling to %d containers: %w", w.v.name, n, err)
		}
	}
	return nil
}

// fillParallel attaches the world's first n containers (4 mappings each)
// all at once, with the measured chain, masquerade included: the
// parallel-ADD workload on an empty host. Those that fail
// are retried one by one afterwards, so the world still holds n.
func (w *world) fillParallel(n int, nextPort func() int) (parallelResult, error) {
	cs := make([]*container, n)
	for i := range cs {
		c, err := w.newFiller(nextPort)
		if err != nil {
			for _, made := range cs[:i] {
				made.release()
			}
			return parallelResult{}, err
		}
		cs[i] = c
	}
	w.fillers = append(w.fillers, cs...)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range cs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, errs[i] = w.add(cs[i])
		}(i)
	}
	wg.Wait()
	res := parallelResult{wall: time.Since(start)}
	seen := map[string]bool{}
	for i, err := range errs {
		if err != nil {
			res.failures++
			if res.firstErr == "" {
				res.firstErr = err.Error()
			}
			_, _ = w.del(cs[i])
			if _, err := w.add(cs[i]); err != nil {
				return res, fmt.Errorf("%s: retrying a failed parallel ADD: %w", w.v.name, err)
			}
			continue
		}
		seen[cs[i].ip] = true
	}
	res.distinct = len(seen)
	return res, nil
}

// startServer runs the sink server inside c (killed by the returned func).
func startServer(hello string, c *container, port int) (func(), error) {
	cmd := exec.Command("nsenter", "--net="+c.ns.Path(), hello, "sink", "-port", fmt.Sprint(port))
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }, nil
}
