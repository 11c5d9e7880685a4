package install

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeHost is a host with some links and networks.
type fakeHost struct {
	links map[string]bool
	nets  []Prefix
}

func (f fakeHost) LinkExists(name string) bool { return f.links[name] }
func (f fakeHost) InUse() ([]Prefix, error)    { return f.nets, nil }

func prefix(cidr, link string) Prefix {
	_, n, _ := net.ParseCIDR(cidr)
	return Prefix{Net: n, Link: link}
}

// docker is a host where Docker owns docker0 and 172.17.0.0/16.
var docker = fakeHost{links: map[string]bool{"docker0": true, "eth0": true},
	nets: []Prefix{prefix("172.17.0.0/16", "docker0"), prefix("192.0.2.0/24", "eth0")}}

func template(t *testing.T, name string) []byte {
	data, err := os.ReadFile(filepath.Join("../../../conf", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func options(t *testing.T, tmpl string) Options {
	src := t.TempDir()
	for _, p := range []string{"bridge", "portmap"} {
		if err := os.WriteFile(filepath.Join(src, p), []byte("#!plugin "+p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return Options{SrcBin: src, Plugins: []string{"bridge", "portmap"}, BinDir: filepath.Join(t.TempDir(), "bin"),
		ConfDir: filepath.Join(t.TempDir(), "net.d"), Template: template(t, tmpl), FileName: filepath.Base(tmpl)}
}

// installed reads back the bridge name and first range of what Run wrote.
func installed(t *testing.T, o Options) (bridge string, rng map[string]any) {
	data, err := os.ReadFile(filepath.Join(o.ConfDir, o.FileName))
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseConflist(data)
	if err != nil {
		t.Fatalf("installed conflist: %v\n%s", err, data)
	}
	return c.bridge, c.firstRange()
}

func TestChoose(t *testing.T) {
	for _, tc := range []struct {
		name           string
		tmpl           string
		host           fakeHost
		subnet, bridge string // options
		wantBridge     string
		wantRange      map[string]any
		wantLog        string
		wantErr        string
	}{
		{name: "empty host keeps the template", tmpl: "10-docker0.conflist", host: fakeHost{},
			wantBridge: "docker0", wantRange: map[string]any{"subnet": "172.17.0.0/16", "gateway": "172.17.0.1"}},
		{name: "beside Docker: another bridge and subnet", tmpl: "10-docker0.conflist", host: docker,
			wantBridge: "dnet0", wantRange: map[string]any{"subnet": "172.18.0.0/16"},
			wantLog: "a link named docker0 is already on this host and 172.17.0.0/16 is already in use (172.17.0.0/16 on docker0)"},
		{name: "beside Docker with more networks", tmpl: "10-docker0.conflist",
			host:       fakeHost{links: map[string]bool{"docker0": true, "dnet0": true}, nets: []Prefix{prefix("172.17.0.0/16", "docker0"), prefix("172.18.0.0/16", "br-1"), prefix("172.19.5.0/24", "br-2")}},
			wantBridge: "dnet1", wantRange: map[string]any{"subnet": "172.20.0.0/16"}, wantLog: "uses bridge dnet1 and 172.20.0.0/16 instead"},
		{name: "only the subnet taken", tmpl: "10-docker0.conflist", host: fakeHost{nets: []Prefix{prefix("172.16.0.0/12", "vpn0")}},
			wantErr: "none of 172.18.0.0/16 to 172.31.0.0/16 is free"},
		{name: "an explicit subnet is used as given", tmpl: "kubernetes/10-dockernet.conflist", host: docker, subnet: "10.244.3.0/24",
			wantBridge: "cni0", wantRange: map[string]any{"subnet": "10.244.3.0/24"}},
		{name: "an explicit subnet that overlaps is refused", tmpl: "kubernetes/10-dockernet.conflist", host: docker, subnet: "172.17.3.0/24",
			wantErr: "subnet 172.17.3.0/24 overlaps 172.17.0.0/16 on docker0"},
		{name: "an explicit bridge is used as given", tmpl: "10-docker0.conflist", host: docker, bridge: "br-dnet", subnet: "172.30.0.0/16",
			wantBridge: "br-dnet", wantRange: map[string]any{"subnet": "172.30.0.0/16"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := options(t, tc.tmpl)
			o.Subnet, o.Bridge = tc.subnet, tc.bridge
			var log bytes.Buffer
			o.Log = &log
			res, err := Run(o, tc.host)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				if entries, _ := os.ReadDir(o.ConfDir); len(entries) > 0 {
					t.Errorf("a refused install wrote %v", entries)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			bridge, rng := installed(t, o)
			if bridge != tc.wantBridge || res.Bridge != tc.wantBridge {
				t.Errorf("bridge %q (result %q), want %q", bridge, res.Bridge, tc.wantBridge)
			}
			got, _ := json.Marshal(rng)
			want, _ := json.Marshal(tc.wantRange)
			if string(got) != string(want) {
				t.Errorf("range %s, want %s", got, want)
			}
			if !strings.Contains(log.String(), tc.wantLog) || (tc.wantLog == "" && log.Len() > 0) {
				t.Errorf("log %q, want %q", log.String(), tc.wantLog)
			}
			if len(res.Written) != 3 {
				t.Errorf("wrote %v, want both plugins and the conflist", res.Written)
			}
		})
	}
}

// TestRerunChangesNothing: a second install (as the DaemonSet's on every
// restart) writes nothing, and keeps the first's choice even though its
// own bridge is now on the host.
func TestRerunChangesNothing(t *testing.T) {
	o := options(t, "10-docker0.conflist")
	if _, err := Run(o, docker); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(o.ConfDir, o.FileName)
	before, _ := os.Stat(target)
	time.Sleep(10 * time.Millisecond)
	withOurs := fakeHost{links: map[string]bool{"docker0": true, "dnet0": true},
		nets: append([]Prefix{prefix("172.18.0.0/16", "dnet0")}, docker.nets...)}
	res, err := Run(o, withOurs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Written) != 0 || res.Bridge != "dnet0" || res.Subnet != "172.18.0.0/16" {
		t.Errorf("rerun: %+v, want nothing written and dnet0 on 172.18.0.0/16 kept", res)
	}
	after, _ := os.Stat(target)
	if !after.ModTime().Equal(before.ModTime()) {
		t.Error("rerun rewrote the conflist")
	}
	// A changed plugin is replaced, and only it.
	if err := os.WriteFile(filepath.Join(o.SrcBin, "portmap"), []byte("#!plugin portmap v2"), 0o755); err != nil {
		t.Fatal(err)
	}
	res, err = Run(o, withOurs)
	if err != nil || len(res.Written) != 1 || filepath.Base(res.Written[0]) != "portmap" {
		t.Errorf("after a new portmap: %+v %v, want only portmap written", res, err)
	}
}

// TestWriteAtomicLeavesNoTemporary: the rename leaves no temporary file.
func TestWriteAtomicLeavesNoTemporary(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 2; i++ {
		if _, err := writeAtomic(filepath.Join(dir, "f"), []byte{byte(i)}, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("dir holds %v, want only f", entries)
	}
}

func TestBadTemplate(t *testing.T) {
	o := options(t, "10-docker0.conflist")
	o.Template = []byte(`{"name":"x","plugins":[{"type":"portmap"}]}`)
	if _, err := Run(o, fakeHost{}); err == nil || !strings.Contains(err.Error(), `no "bridge" plugin`) {
		t.Fatalf("err %v", err)
	}
	if _, err := os.Stat(o.BinDir); err == nil {
		t.Error("a refused install copied plugins")
	}
}

// TestOtherComponentsConflists: a conflist someone else wrote is never
// overwritten; the cluster installer (Exclusive) writes none beside
// another network's, and -binaries-only never touches the directory.
func TestOtherComponentsConflists(t *testing.T) {
	flannel := `{"name":"cbr0","cniVersion":"0.3.1","plugins":[{"type":"flannel","delegate":{"isDefaultGateway":true}},{"type":"portmap","capabilities":{"portMappings":true}}]}`
	cases := []struct {
		name      string
		file      string // what is in the conf dir before
		exclusive bool
		binaries  bool
		wantErr   string
	}{
		{name: "flannel's beside, single host", file: "10-flannel.conflist"},
		{name: "flannel's beside, cluster installer", file: "10-flannel.conflist", exclusive: true, wantErr: "is another component's"},
		{name: "flannel's under our name", file: "10-dockernet.conflist", wantErr: `holds network "cbr0", not "dockernet"`},
		{name: "binaries only, cluster installer", file: "10-flannel.conflist", exclusive: true, binaries: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := options(t, "kubernetes/10-dockernet.conflist")
			o.Exclusive = tc.exclusive
			if err := os.MkdirAll(o.ConfDir, 0o755); err != nil {
				t.Fatal(err)
			}
			theirs := filepath.Join(o.ConfDir, tc.file)
			if err := os.WriteFile(theirs, []byte(flannel), 0o644); err != nil {
				t.Fatal(err)
			}
			var written []string
			var err error
			if tc.binaries {
				written, err = Plugins(o)
			} else {
				var res Result
				res, err = Run(o, fakeHost{})
				written = res.Written
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "-binaries-only") {
					t.Fatalf("err %v, want one saying %q and naming -binaries-only", err, tc.wantErr)
				}
				if _, err := os.Stat(o.BinDir); err == nil {
					t.Error("a refused install copied plugins")
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if data, _ := os.ReadFile(theirs); string(data) != flannel {
				t.Errorf("%s was changed to %s", tc.file, data)
			}
			entries, _ := os.ReadDir(o.ConfDir)
			if tc.binaries && (len(entries) != 1 || len(written) != 2) {
				t.Errorf("binaries only: conf dir %v, wrote %v; want flannel's alone and the two plugins", entries, written)
			}
		})
	}
}

// TestClusterCIDR: the cluster's pod network becomes the bridge's
// nonMasqueradeCIDRs, and a node subnet outside it is refused.
func TestClusterCIDR(t *testing.T) {
	cases := []struct {
		name, subnet, cluster, want, wantErr string
	}{
		{name: "the template's", subnet: "10.244.3.0/24", want: "10.244.0.0/16"},
		{name: "given", subnet: "10.42.3.0/24", cluster: "10.42.0.0/16", want: "10.42.0.0/16"},
		{name: "given with host bits", subnet: "10.42.3.0/24", cluster: "10.42.1.1/16", want: "10.42.0.0/16"},
		{name: "outside the template's", subnet: "10.42.3.0/24", wantErr: "outside the cluster's pod network"},
		{name: "outside the given", subnet: "10.244.3.0/24", cluster: "10.42.0.0/16", wantErr: "-cluster-cidr"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := options(t, "kubernetes/10-dockernet.conflist")
			o.Subnet, o.ClusterCIDR = tc.subnet, tc.cluster
			_, err := Run(o, fakeHost{})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(filepath.Join(o.ConfDir, o.FileName))
			c, err := parseConflist(data)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(c.bridgePlugin()["nonMasqueradeCIDRs"]); got != "["+tc.want+"]" {
				t.Errorf("nonMasqueradeCIDRs %s, want [%s]", got, tc.want)
			}
		})
	}
}
