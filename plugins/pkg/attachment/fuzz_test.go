package attachment

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/state"
)

// FuzzRecord: whatever a record file holds (a crash mid-write, a foreign
// file, an older format), loading it for any kind gives a record or an
// error, never a panic, and a record's specs can be asked their family.
func FuzzRecord(f *testing.F) {
	for _, dir := range []string{"masq", "portmap"} {
		files, _ := filepath.Glob(filepath.Join("testdata", "before-refactor", dir, "*.json"))
		for _, file := range files {
			if raw, err := os.ReadFile(file); err == nil {
				f.Add(raw)
			}
		}
	}
	f.Add([]byte(`{"Backend":"nftables","Specs":[{"Owner":{"Network":"n","ContainerID":"c","IfName":"eth0"},"IP":"172.17.0.2","Bridge":"docker0","Protect":true,"Isolate":true}]}`))
	f.Add([]byte(`{"Backend":"iptables","Specs":[{}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		env := Env{Store: state.New(t.TempDir())}
		o := netfilter.Owner{Network: "n", ContainerID: "c", IfName: "eth0"}
		for _, kind := range []string{Masquerade.Name, PortMappings.Name, Forwarding.Name} {
			p := filepath.Join(env.Store.Dir, kind, o.Tag()+".json")
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, raw, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if rec, found, err := Masquerade.load(env, o); err == nil && found {
			for _, s := range rec.Specs {
				_ = s.Family()
			}
		}
		if rec, found, err := PortMappings.load(env, o); err == nil && found {
			for _, s := range rec.Specs {
				_ = s.Family()
			}
		}
		if rec, found, err := Forwarding.load(env, o); err == nil && found {
			for _, s := range rec.Specs {
				_ = s.Family()
			}
		}
	})
}
