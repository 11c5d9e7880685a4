package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter/nft"
)

// latency measures chain ADD and DEL of one container with nMaps mappings,
// runs times, round-robin over the worlds so drift hits every world alike.
// Results are keyed by the world's label.
func latency(worlds []*world, nMaps, runs int) (adds, dels map[string][]time.Duration, err error) {
	adds, dels = map[string][]time.Duration{}, map[string][]time.Duration{}
	probes := map[string]*container{}
	for _, w := range worlds {
		var ms []mapping
		for i := 0; i < nMaps; i++ {
			ms = append(ms, mapping{HostPort: 10000 + i, ContainerPort: 80, Protocol: "tcp"})
		}
		if probes[w.label()], err = w.newContainer(ms); err != nil {
			return nil, nil, err
		}
	}
	defer func() {
		for _, c := range probes {
			c.release()
		}
	}()
	for r := 0; r < runs; r++ {
		for _, w := range worlds {
			c := probes[w.label()]
			a, err := w.add(c)
			if err != nil {
				return nil, nil, fmt.Errorf("%s ADD: %w", w.v.name, err)
			}
			d, err := w.del(c)
			if err != nil {
				return nil, nil, fmt.Errorf("%s DEL: %w", w.v.name, err)
			}
			adds[w.label()] = append(adds[w.label()], a)
			dels[w.label()] = append(dels[w.label()], d)
		}
	}
	return adds, dels, nil
}

// connResult is one connection-rate measurement.
type connResult struct {
	rate    float64 // connections per second; the median round when several
	rounds  []float64
	lat     []time.Duration
	failed  int
	elapsed time.Duration
}

// connRate opens connections to addr from the client netns for dur with
// `workers` parallel dialers: connect, wait for the server's greeting byte,
// then reset. Every connection is new, so every one walks the NAT rules.
// The reset leaves no TIME_WAIT on either side: a graceful close would
// park each client port for a minute, and once the ephemeral range is
// used up the port search itself would be what is measured.
func connRate(w *world, addr string, dur time.Duration, workers int) connResult {
	var mu sync.Mutex
	var res connResult
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = w.client.Do(func(ns.NetNS) error {
				var lats []time.Duration
				failed := 0
				buf := make([]byte, 16)
				for time.Since(start) < dur {
					t0 := time.Now()
					c, err := net.DialTimeout("tcp", addr, 2*time.Second)
					if err != nil {
						failed++
						continue
					}
					tc := c.(*net.TCPConn)
					_ = tc.SetDeadline(time.Now().Add(2 * time.Second))
					_, err = io.ReadFull(tc, buf[:1])
					_ = tc.SetLinger(0)
					_ = tc.Close()
					if err != nil {
						failed++
						continue
					}
					lats = append(lats, time.Since(t0))
				}
				mu.Lock()
				res.lat = append(res.lat, lats...)
				res.failed += failed
				mu.Unlock()
				return nil
			})
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.rate = float64(len(res.lat)) / res.elapsed.Seconds()
	return res
}

// throughput sends as much as it can to addr for dur over one connection.
func throughput(w *world, addr string, dur time.Duration) (float64, error) {
	var bps float64
	err := w.client.Do(func(ns.NetNS) error {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 256<<10)
		var sent int64
		start := time.Now()
		for time.Since(start) < dur {
			n, err := c.Write(buf)
			sent += int64(n)
			if err != nil {
				return err
			}
		}
		bps = float64(sent*8) / time.Since(start).Seconds()
		return nil
	})
	return bps, err
}

// waitListening waits until addr accepts connections from the client netns.
func waitListening(w *world, addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		err := w.client.Do(func(ns.NetNS) error {
			c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s: nothing answers on %s", w.v.name, addr)
}

// nftTransactions compares one element add committed by an `nft -f`
// process (what sigs.k8s.io/knftables does for every transaction) with the
// same add through our netlink backend (github.com/google/nftables).
func nftTransactions(w *world, runs int) (res nftResult, err error) {
	spec := netfilter.PortMapSpec{
		Owner:       netfilter.Owner{Network: "bench", ContainerID: "nft-probe", IfName: "eth0"},
		ContainerIP: net.ParseIP("172.17.250.1"),
		Mappings:    []netfilter.PortMapping{{HostPort: 9999, ContainerPort: 80, Protocol: "tcp"}},
	}
	err = w.host.Do(func(ns.NetNS) error {
		be, err := nft.New(netfilter.IPv4, nil)
		if err != nil {
			return err
		}
		for i := 0; i < runs; i++ {
			t0 := time.Now()
			if err := netfilter.Do(func(tx *netfilter.Txn) { be.AddPortMappings(tx, spec) }); err != nil {
				return err
			}
			res.netlink = append(res.netlink, time.Since(t0))
			if err := netfilter.Do(func(tx *netfilter.Txn) { be.DelPortMappings(tx, spec) }); err != nil {
				return err
			}
			cmd := exec.Command("nft", "-f", "-")
			cmd.Stdin = strings.NewReader("add element ip dnet hostports { tcp . 9999 : 172.17.250.1 . 80 }\n")
			t0 = time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("nft -f: %v: %s", err, out)
			}
			res.exec = append(res.exec, time.Since(t0))
			if out, err := exec.Command("nft", "delete", "element", "ip", "dnet", "hostports", "{ tcp . 9999 }").CombinedOutput(); err != nil {
				return fmt.Errorf("nft delete: %v: %s", err, out)
			}
		}
		return nil
	})
	return res, err
}

// kernelFloor times what every bridge ADD and DEL must ask of the kernel,
// without any plugin: a veth pair made, attached to the bridge and brought
// up, then deleted, through netlink in the host netns.
func kernelFloor(w *world, runs int) (adds, dels []time.Duration, err error) {
	err = w.host.Do(func(ns.NetNS) error {
		br, err := netlink.LinkByName("docker0")
		if err != nil {
			return err
		}
		for i := 0; i < runs; i++ {
			attrs := netlink.NewLinkAttrs()
			attrs.Name = "kfloor0"
			veth := &netlink.Veth{LinkAttrs: attrs, PeerName: "kfloor1"}
			t0 := time.Now()
			if err := netlink.LinkAdd(veth); err != nil {
				return err
			}
			if err := netlink.LinkSetMaster(veth, br); err != nil {
				return err
			}
			if err := netlink.LinkSetUp(veth); err != nil {
				return err
			}
			adds = append(adds, time.Since(t0))
			t0 = time.Now()
			if err := netlink.LinkDel(veth); err != nil {
				return err
			}
			dels = append(dels, time.Since(t0))
		}
		return nil
	})
	return adds, dels, err
}

// pluginTimes times each plugin of the chain on its own, as libcni would
// invoke it, in the host netns: the IPAM plugin, portmap (with a prevResult
// for an address no container uses) and bridge (whose time includes IPAM).
func pluginTimes(w *world, runs int) (map[string][]time.Duration, error) {
	out := map[string][]time.Duration{}
	c, err := w.newContainer(nil)
	if err != nil {
		return nil, err
	}
	defer c.release()
	// The plugin configs as libcni hands them over: name and cniVersion added.
	cfg := func(i int) []byte {
		var m map[string]any
		_ = json.Unmarshal(w.list.Plugins[i].Bytes, &m)
		m["name"], m["cniVersion"] = w.list.Name, w.list.CNIVersion
		return mustJSON(m)
	}
	bridgeConf, portmapConf := cfg(0), cfg(1)
	pm := map[string]any{}
	_ = json.Unmarshal(portmapConf, &pm)
	pm["runtimeConfig"] = map[string]any{"portMappings": []mapping{{HostPort: 10500, ContainerPort: 80, Protocol: "tcp"}}}
	pm["prevResult"] = map[string]any{"cniVersion": w.list.CNIVersion,
		"interfaces": []any{map[string]any{"name": "docker0"}, map[string]any{"name": "v"}, map[string]any{"name": "eth0", "sandbox": c.ns.Path()}},
		"ips":        []any{map[string]any{"address": "172.17.250.250/16", "interface": 2}}}
	calls := []struct {
		name, plugin string
		conf         []byte
	}{
		{"host-local", "host-local", bridgeConf},
		{"portmap", "portmap", mustJSON(pm)},
		{"bridge (incl. host-local)", "bridge", bridgeConf},
	}
	err = w.host.Do(func(ns.NetNS) error {
		for i := 0; i < runs; i++ {
			for _, call := range calls {
				t0 := time.Now()
				for _, cmd := range []string{"ADD", "DEL"} {
					args := &invoke.Args{Command: cmd, ContainerID: "probe-" + call.plugin, NetNS: c.ns.Path(), IfName: "eth0", Path: w.v.bin}
					if err := invoke.ExecPluginWithoutResult(context.Background(), filepath.Join(w.v.bin, call.plugin), call.conf, args, nil); err != nil && cmd == "DEL" {
						return fmt.Errorf("%s %s %s: %w", w.v.name, call.plugin, cmd, err)
					} else if err != nil && call.plugin != "host-local" {
						return fmt.Errorf("%s %s %s: %w", w.v.name, call.plugin, cmd, err)
					}
				}
				out[call.name] = append(out[call.name], time.Since(t0))
			}
		}
		return nil
	})
	return out, err
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
