package attachment

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/state"
)

// FuzzRecord: whatever a record file holds (a crash mid-write, a foreign
// file, an older format), loading it for any kind gives a record or a CNI
// error with a code, never a panic; a record's specs can be asked their
// family, and a record saved again loads back the same (nothing read is
// lost on the next write).
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
		roundTrip(t, env, o, Masquerade)
		roundTrip(t, env, o, PortMappings)
		roundTrip(t, env, o, Forwarding)
	})
}

func roundTrip[S Spec](t *testing.T, env Env, o netfilter.Owner, kind Kind[S]) {
	rec, found, err := kind.load(env, o)
	if err != nil {
		if e, ok := err.(*types.Error); !ok || e.Code == 0 || e.Msg == "" {
			t.Fatalf("%s: loading gave an error without a CNI code: %#v", kind.Name, err)
		}
		return
	}
	if !found {
		t.Fatalf("%s: the record written is not found", kind.Name)
	}
	for _, s := range rec.Specs {
		_ = s.Family()
	}
	if err := env.Store.Save(kind.Name, o.Tag(), rec); err != nil {
		t.Fatalf("%s: save again: %v", kind.Name, err)
	}
	again, _, err := kind.load(env, o)
	if err != nil {
		t.Fatalf("%s: a record saved again does not load: %v", kind.Name, err)
	}
	first, _ := json.Marshal(rec)
	second, _ := json.Marshal(again)
	if !bytes.Equal(first, second) {
		t.Fatalf("%s: a record changed on its way through the store:\n%s\n%s", kind.Name, first, second)
	}
}
