package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/dockernet/cni-plugins/plugins/pkg/install"
	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// TestClientCRI2: the pods of TestClientCRI through containerd 2's CRI
// (built by `make cluster-tools`), on the Kubernetes conflist at
// cniVersion 1.1.0, the version whose STATUS and GC containerd 2's libcni
// sends. A wrapper records every plugin call: what containerd sends is
// checked and printed.
func TestClientCRI2(t *testing.T) {
	h := newClientHost(t, "containerd 2 CRI", "ctr", "runc")
	dir := filepath.Dir(testenv.Built(t, "CLUSTER_TOOLS", ".tools/cluster", "containerd"))
	conf := strings.Replace(string(renderKubernetes(t, podCIDR)), `"cniVersion": "1.0.0"`, `"cniVersion": "1.1.0"`, 1)
	if !strings.Contains(conf, `"cniVersion": "1.1.0"`) {
		t.Fatalf("the Kubernetes conflist does not say 1.0.0 any more:\n%s", conf)
	}
	writeFile(t, filepath.Join(h.netD, "10-dockernet.conflist"), conf)
	calls := h.recordCalls()
	cri := criSuite(h, h.startContainerdBuild("k8s.io", containerdBuild{dir: dir, config: containerd2Config}))
	// kubelet asks the runtime's status every few seconds; containerd 2
	// answers NetworkReady from the plugins' STATUS.
	out, err := cri("info")
	if err == nil {
		err = networkReady(out)
	}
	h.check("crictl info: NetworkReady, from the plugins' STATUS", err)

	data, _ := os.ReadFile(calls)
	counts := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line != "" {
			counts[line]++
		}
	}
	var seen []string
	for call, n := range counts {
		seen = append(seen, fmt.Sprintf("%s ×%d", call, n))
	}
	sort.Strings(seen)
	t.Logf("containerd 2's plugin calls (command, plugin, cniVersion):\n  %s", strings.Join(seen, "\n  "))
	h.check("containerd 2 sent STATUS at cniVersion 1.1.0 to each plugin of the conflist", errUnless(counts["STATUS bridge 1.1.0"] > 0 && counts["STATUS portmap 1.1.0"] > 0, "no STATUS to bridge and portmap"))
	h.check("containerd 2 sent ADD and DEL at cniVersion 1.1.0", errUnless(counts["ADD bridge 1.1.0"] > 0 && counts["DEL bridge 1.1.0"] > 0, "no ADD or DEL at 1.1.0"))
}

// recordCalls puts a wrapper in front of each plugin in the private
// /opt/cni/bin that appends "COMMAND PLUGIN CNIVERSION" to a log (in the
// test's dir, outside /var/lib/cni) and runs the real plugin; it returns
// the log's path.
func (h *clientHost) recordCalls() string {
	real := filepath.Join(h.cniBin, ".real")
	if err := os.MkdirAll(real, 0o755); err != nil {
		h.t.Fatal(err)
	}
	log := filepath.Join(h.dir, "plugin-calls.log")
	for _, p := range install.PluginBinaries {
		if err := os.Rename(filepath.Join(h.cniBin, p), filepath.Join(real, p)); err != nil {
			h.t.Fatal(err)
		}
		script := fmt.Sprintf(`#!/bin/sh
in=$(cat)
v=$(printf '%%s' "$in" | grep -o '"cniVersion": *"[^"]*"' | head -n1 | sed 's/.*"\([^"]*\)"$/\1/')
echo "$CNI_COMMAND %[1]s $v" >>%[2]s
printf '%%s' "$in" | exec %[3]s
`, p, log, filepath.Join(real, p))
		if err := os.WriteFile(filepath.Join(h.cniBin, p), []byte(script), 0o755); err != nil {
			h.t.Fatal(err)
		}
	}
	return log
}

// networkReady reads crictl info's runtime conditions.
func networkReady(info string) error {
	var v struct {
		Status struct {
			Conditions []struct {
				Type    string `json:"type"`
				Status  bool   `json:"status"`
				Message string `json:"message"`
			} `json:"conditions"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(info), &v); err != nil {
		return fmt.Errorf("crictl info: %v", err)
	}
	for _, c := range v.Status.Conditions {
		if c.Type == "NetworkReady" {
			return errUnless(c.Status, "NetworkReady is false: "+c.Message)
		}
	}
	return fmt.Errorf("crictl info has no NetworkReady condition")
}
