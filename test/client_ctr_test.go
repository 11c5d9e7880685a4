package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// TestClientCtr: `ctr run --cni`, which reads /etc/cni/net.d and
// /opt/cni/bin (no flag moves them; the private mount namespace does) and
// gives our conf/10-docker0.conflist no capabilities. It calls DEL when
// the task has exited, so the netns it names is already gone.
func TestClientCtr(t *testing.T) {
	h := newClientHost(t, "ctr", "containerd", "ctr", "runc")
	copyFile(t, "../conf/10-docker0.conflist", filepath.Join(h.netD, "10-docker0.conflist"), 0o644)
	c := h.startContainerd("dnet")
	ctr := []string{"ctr", "-a", c.sock, "-n", "dnet"}
	outside := 7000
	h.client.Start(filepath.Join(h.bin, "hello"), "serve", "-port", fmt.Sprint(outside))

	run := h.command(append(ctr, "run", "--rm", "--cni", helloImage, "web", "/hello", "serve")...)
	var out strings.Builder
	run.Stdout, run.Stderr = &out, &out
	t.Logf("$ %s &", strings.Join(run.Args, " "))
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	var runErr error
	exited := make(chan struct{})
	go func() { runErr = run.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
			return
		default:
		}
		_, _ = h.run(append(ctr, "task", "kill", "-s", "KILL", "web")...)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = run.Process.Kill()
		}
	})

	var ip string
	testenv.Eventually(t, 20*time.Second, "ctr run --cni attaching web", func() error {
		ip = h.attachedIP("web")
		if ip == "" {
			return fmt.Errorf("no attachment recorded yet; ctr said: %s", out.String())
		}
		return nil
	})
	h.check("ctr run --cni: web attached at "+ip, nil)
	h.waitServingAt(ip)
	h.reach(h.host, "tcp", ip, helloPort)
	h.reach(h.host, "udp", ip, helloPort)
	got, err := h.run(append(ctr, "task", "exec", "--exec-id", "probe", "web", "/hello", "get", fmt.Sprintf("http://%s:%d/", clientAddr, outside))...)
	if err == nil && !strings.Contains(got, "peer="+hostAddr+":") {
		err = fmt.Errorf("the outside server saw %q, not the host address %s (no masquerade)", got, hostAddr)
	}
	h.check("outbound from web is masqueraded to the host address", err)
	h.check("dnetctl check while running", h.dnetctlCheck())

	_, err = h.run(append(ctr, "task", "kill", "-s", "KILL", "web")...)
	h.check("ctr task kill", err)
	select {
	case <-exited:
		err = runErr
		// ctr exits with the task's status: hello dies of the KILL (PID 1 ignores TERM).
		t.Logf("ctr run ended: %v%s", err, indentOutput([]byte(out.String()), nil))
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			err = nil
		}
	case <-time.After(20 * time.Second):
		err = fmt.Errorf("ctr run did not end")
	}
	h.check("ctr run --rm ends and deletes the attachment", err)
	h.check("nothing left after ctr run --rm", h.leftovers("docker0", ip))
	h.check("dnetctl check after", h.dnetctlCheck())
}

// attachedIP is the address dnetctl lists for container id's attachment
// (ctr names it "<namespace>-<id>").
func (h *clientHost) attachedIP(id string) string {
	out, err := h.command(filepath.Join(h.bin, "dnetctl"), "list", "-json").Output()
	if err != nil {
		return ""
	}
	var list []struct {
		ContainerID string   `json:"containerID"`
		Addresses   []string `json:"addresses"`
	}
	if json.Unmarshal(out, &list) != nil {
		return ""
	}
	for _, a := range list {
		if strings.HasSuffix(a.ContainerID, id) && len(a.Addresses) > 0 {
			return strings.Split(a.Addresses[0], "/")[0]
		}
	}
	return ""
}
