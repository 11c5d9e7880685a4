package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// flavours are the iptables implementations a host may use.
var flavours = []string{"nft", "legacy"}

// dockerChains is the filter table of a host where Docker 28 (iptables
// backend) runs with its own bridge: FORWARD policy DROP, DOCKER-USER
// first, and Docker's chains, which must stay exactly as they are.
const dockerChains = `*filter
:FORWARD DROP [0:0]
:DOCKER-USER - [0:0]
:DOCKER-FORWARD - [0:0]
:DOCKER-CT - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-BRIDGE - [0:0]
:DOCKER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-FORWARD
-A DOCKER-FORWARD -j DOCKER-CT
-A DOCKER-FORWARD -j DOCKER-ISOLATION-STAGE-1
-A DOCKER-FORWARD -j DOCKER-BRIDGE
-A DOCKER-FORWARD -i br-dockerd -j ACCEPT
-A DOCKER-CT -o br-dockerd -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i br-dockerd ! -o br-dockerd -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-2 -o br-dockerd -j DROP
-A DOCKER-BRIDGE -o br-dockerd -j DOCKER
-A DOCKER ! -i br-dockerd -o br-dockerd -j DROP
COMMIT
`

// useFlavour makes the plugins (and the test's own iptables-save) use
// iptables-<flavour> whatever the machine's alternatives say.
func (w *world) useFlavour(flavour string) {
	dir := filepath.Join(w.dir, "iptables-"+flavour)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		w.t.Fatal(err)
	}
	for _, ipt := range []string{"iptables", "ip6tables"} {
		for _, suffix := range []string{"", "-save", "-restore"} {
			target := testenv.Tool(w.t, ipt+"-"+flavour+suffix)
			if err := os.Symlink(target, filepath.Join(dir, ipt+suffix)); err != nil {
				w.t.Fatal(err)
			}
		}
	}
	w.env = append(w.env, "PATH="+dir+":"+os.Getenv("PATH"))
	w.iptables = "iptables-" + flavour
}

// dockerHost loads dockerChains into the host netns with iptables-<flavour>
// and returns a function that reads them back.
func (w *world) dockerHost(flavour string) func() string {
	for _, ipt := range []string{"iptables", "ip6tables"} {
		cmd := exec.Command("ip", "netns", "exec", w.host.Name, ipt+"-"+flavour+"-restore", "--noflush")
		cmd.Stdin = strings.NewReader(dockerChains)
		if out, err := cmd.CombinedOutput(); err != nil {
			w.t.Fatalf("%s-%s-restore: %v\n%s", ipt, flavour, err, out)
		}
	}
	return func() string {
		var keep []string
		for _, ipt := range []string{"iptables", "ip6tables"} {
			out := w.host.MustRun(ipt+"-"+flavour+"-save", "-t", "filter")
			for _, l := range strings.Split(out, "\n") {
				if strings.Contains(l, "DOCKER") || strings.HasPrefix(l, ":FORWARD") {
					// Policy counters count what the policy dropped, not a change.
					keep = append(keep, ipt+": "+regexp.MustCompile(` \[\d+:\d+\]$`).ReplaceAllString(l, ""))
				}
			}
		}
		return strings.Join(keep, "\n")
	}
}

// TestForwardPolicyDrop is the whole port path, IPv6 and IPv4, on a host
// whose FORWARD policies are DROP, with Docker's chains in place, for each
// backend and iptables flavour: everything must still work, and Docker's
// chains and the policies must be exactly as before.
func TestForwardPolicyDrop(t *testing.T) {
	for _, backend := range backends {
		for _, flavour := range flavours {
			t.Run(backend+"/iptables-"+flavour, func(t *testing.T) {
				t.Parallel()
				w := newWorld(t, backend)
				w.useFlavour(flavour)
				w.dualStack()
				docker := w.dockerHost(flavour)
				before := docker()
				testPublishedPortsIPv6(t, w, w.libcni(""))
				testPublishedPorts(t, w, w.libcni(""))
				after := docker()
				if before != after {
					t.Errorf("Docker's chains or the FORWARD policy changed:\nbefore:\n%s\nafter:\n%s", before, after)
				}
				saved := w.host.MustRun("iptables-"+flavour+"-save", "-t", "filter")
				if i, j := strings.Index(saved, "-A FORWARD -j DOCKER-FORWARD"), strings.Index(saved, "-A FORWARD -m comment --comment \"dnet:base\" -j DNET-FORWARD"); i < 0 || j < i {
					t.Errorf("our FORWARD jump is missing or not after Docker's:\n%s", saved)
				}
			})
		}
	}
}

// TestWithReferenceFirewall chains the reference firewall plugin after
// ours, as Podman's default conflist does, on a host whose FORWARD policy
// is DROP: the whole port path still works, and DEL leaves nothing of ours.
func TestWithReferenceFirewall(t *testing.T) {
	abs := refPlugin(t, "firewall")
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, backend)
			w.cniPath = append(w.cniPath, filepath.Dir(abs))
			w.host.MustRun("iptables", "-P", "FORWARD", "DROP")
			d := w.libcniFor(w.network(network{chained: []map[string]any{{"type": "firewall", "backend": "iptables"}}}))
			testPublishedPorts(t, w, d)
		})
	}
}
