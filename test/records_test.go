package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// addedSince matches what a record holds now that the earlier code's
// did not write.
var addedSince = regexp.MustCompile(`,\n\s*"Subnet": \{[^}]*\}`)

// Records written by the code before plugins/pkg/attachment existed are
// kept in its testdata. The same attachments added now write the same
// bytes but for the format's version and the fields added since, and a
// DEL that finds the old records removes every rule, element and record
// of them, and of their network.
func TestRecordsFromBeforeTheAttachmentFlow(t *testing.T) {
	fixtures := filepath.Join("..", "plugins", "pkg", "attachment", "testdata", "before-refactor")
	for backend, ifname := range map[string]string{"iptables": "eth0", "nftables": "eth1"} {
		t.Run(backend, func(t *testing.T) {
			testenv.RequireRoot(t)
			bin := testenv.Bin(t)
			p := testenv.Prefix()
			host, ctr := testenv.NewNS(t, p+"-host"), testenv.NewNS(t, p+"-ctr")
			dir := t.TempDir()
			stateDir := filepath.Join(dir, "state")
			bridgeConf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"legacy","type":"bridge","bridge":"br-legacy","isGateway":true,
				"ipMasq":true,"ipMasqBackend":%q,"stateDir":%q,"ipam":{"type":"host-local","dataDir":%q,"subnet":"10.88.0.0/24"}}`,
				backend, stateDir, filepath.Join(dir, "ipam"))
			call := func(cmd, plugin, conf string) []byte {
				out, err := host.Exec(bin, plugin, testenv.Call{Command: cmd, ContainerID: "old-record", Netns: ctr.Path(), IfName: ifname, Conf: []byte(conf)})
				if err != nil {
					t.Fatalf("%s %s: %v", plugin, cmd, err)
				}
				return out
			}
			portmapConf := func(prev []byte) string {
				return fmt.Sprintf(`{"cniVersion":"1.1.0","name":"legacy","type":"portmap","backend":%q,"stateDir":%q,
					"runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"},
					{"hostPort":8053,"containerPort":53,"protocol":"udp","hostIP":"127.0.0.1"}]},"prevResult":%s}`, backend, stateDir, prev)
			}
			prev := call("ADD", "bridge", bridgeConf)
			call("ADD", "portmap", portmapConf(prev))

			tag := netfilter.Owner{Network: "legacy", ContainerID: "old-record", IfName: ifname}.Tag()
			for _, kind := range []string{"masq", "portmap"} {
				old, err := os.ReadFile(filepath.Join(fixtures, kind, tag+".json"))
				if err != nil {
					t.Fatal(err)
				}
				path := filepath.Join(stateDir, kind, tag+".json")
				now, _ := os.ReadFile(path)
				if versioned := fmt.Sprintf("{\n  \"Version\": %d,\n", attachment.RecordVersion); strings.HasPrefix(string(now), versioned) {
					now = append([]byte("{\n"), now[len(versioned):]...)
				} else {
					t.Errorf("%s record does not start with its version:\n%s", kind, now)
				}
				// Fields added since, which an old record lacks: the
				// iptables masquerade's subnet (its rules are the network's).
				now = addedSince.ReplaceAll(now, nil)
				if string(now) != string(old) {
					t.Errorf("%s record differs from the one the earlier code wrote:\n%s\nwas:\n%s", kind, now, old)
				}
				if err := os.WriteFile(path, old, 0o600); err != nil {
					t.Fatal(err)
				}
			}

			call("DEL", "portmap", portmapConf(prev))
			call("DEL", "bridge", bridgeConf)
			rules := host.MustRun("iptables-save") + host.MustRun("nft", "list", "ruleset")
			if regexp.MustCompile(`id=old-record|10\.88\.0\.2\b`).MatchString(rules) {
				t.Errorf("DEL with the earlier records left rules:\n%s", rules)
			}
			left, _ := filepath.Glob(filepath.Join(stateDir, "*", "*.json"))
			networks, _ := filepath.Glob(filepath.Join(stateDir, "network", "*", "*.json"))
			if left = append(left, networks...); len(left) > 0 {
				t.Errorf("records left: %v", left)
			}
		})
	}
}
