package hostlocal_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// refHostLocal is the reference host-local v1.10.0, installed by make tools.
func refHostLocal(t *testing.T) string {
	return filepath.Dir(testenv.Built(t, "REF_BIN", ".tools/ref", "host-local"))
}

// One dataDir, our host-local and the reference's taking turns, in every
// order, and with either one making the store: whoever added an
// attachment, either one's DEL releases exactly its address, either one's
// GC releases exactly the stale ones, and no address is ever handed out
// twice. The README promises a node can switch between the two.
func TestStoreSharedWithReference(t *testing.T) {
	testenv.RequireRoot(t)
	plugins := map[string]string{"ours": testenv.Bin(t), "ref": refHostLocal(t)}
	host := testenv.NewNS(t, testenv.Prefix()+"-host")
	ctr := testenv.NewNS(t, testenv.Prefix()+"-ctr")
	names := []string{"ours", "ref"}
	for _, maker := range names {
		for _, adder := range names {
			for _, remover := range names {
				t.Run(fmt.Sprintf("store by %s, ADD by %s, DEL and GC by %s", maker, adder, remover), func(t *testing.T) {
					dir := t.TempDir()
					conf := func(extra string) []byte {
						return []byte(fmt.Sprintf(`{"cniVersion":"1.1.0","name":"shared","ipam":{"type":"host-local","dataDir":%q,"subnet":"10.89.0.0/24"}%s}`, dir, extra))
					}
					call := func(who, cmd, id string, extra string) (string, error) {
						out, err := host.Exec(plugins[who], "host-local", testenv.Call{Command: cmd, ContainerID: id, Netns: ctr.Path(), IfName: "eth0", Conf: conf(extra)})
						if err != nil || cmd != "ADD" {
							return "", err
						}
						var r struct{ IPs []struct{ Address string } }
						if err := json.Unmarshal(out, &r); err != nil || len(r.IPs) != 1 {
							return "", fmt.Errorf("%s ADD %s: result %s", who, id, out)
						}
						return strings.Split(r.IPs[0].Address, "/")[0], nil
					}
					reserved := func() map[string]string {
						out := map[string]string{}
						entries, _ := os.ReadDir(filepath.Join(dir, "shared"))
						for _, e := range entries {
							if data, err := os.ReadFile(filepath.Join(dir, "shared", e.Name())); err == nil && strings.Contains(e.Name(), ".") && !strings.HasPrefix(e.Name(), "last_") {
								out[e.Name()] = strings.Split(string(data), "\r\n")[0]
							}
						}
						return out
					}
					must := func(ip string, err error) string {
						t.Helper()
						if err != nil {
							t.Fatal(err)
						}
						return ip
					}
					seed := must(call(maker, "ADD", "seed", ""))
					a := must(call(adder, "ADD", "a", ""))
					b := must(call(adder, "ADD", "b", ""))
					c := must(call(adder, "ADD", "c", ""))
					if len(map[string]bool{seed: true, a: true, b: true, c: true}) != 4 {
						t.Fatalf("an address handed out twice: seed %s a %s b %s c %s", seed, a, b, c)
					}
					must(call(remover, "DEL", "a", ""))
					must(call(remover, "DEL", "a", "")) // a second DEL changes nothing
					if owner, held := reserved()[a]; held {
						t.Fatalf("after DEL of a, %s is still reserved for %s", a, owner)
					}
					valid := `,"cni.dev/valid-attachments":[{"containerID":"seed","ifname":"eth0"},{"containerID":"b","ifname":"eth0"}]`
					must(call(remover, "GC", "", valid))
					got := reserved()
					want := map[string]string{seed: "seed", b: "b"}
					if fmt.Sprint(got) != fmt.Sprint(want) {
						t.Fatalf("after DEL of a and GC keeping seed and b: %v, want %v", got, want)
					}
					// And the freed addresses go out again, once each.
					d := must(call(adder, "ADD", "d", ""))
					e := must(call(remover, "ADD", "e", ""))
					if d == e || d == seed || d == b || e == seed || e == b {
						t.Fatalf("after release: d %s e %s, seed %s b %s", d, e, seed, b)
					}
				})
			}
		}
	}
}
