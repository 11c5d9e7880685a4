package hostlocal

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

func config(t testing.TB, dir, ipam string) *IPAMConfig {
	t.Helper()
	conf := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"net1","ipam":%s}`, ipam)
	c, _, err := LoadConfig([]byte(conf), "")
	if err != nil {
		t.Fatal(err)
	}
	c.DataDir = dir
	return c
}

// The reservation files are byte-for-byte the reference host-local's.
func TestStoreLayoutMatchesReference(t *testing.T) {
	dir := t.TempDir()
	c := config(t, dir, `{"type":"host-local","subnet":"10.1.0.0/24"}`)
	res, err := Allocate(c, "ctr1", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if got := res.IPs[0].Address.String(); got != "10.1.0.2/24" {
		t.Fatalf("first address %s, want 10.1.0.2/24 (gateway .1 skipped)", got)
	}
	data, err := os.ReadFile(filepath.Join(dir, "net1", "10.1.0.2"))
	if err != nil || string(data) != "ctr1\r\neth0" {
		t.Fatalf("reservation file %q (%v)", data, err)
	}
	last, _ := os.ReadFile(filepath.Join(dir, "net1", "last_reserved_ip.0"))
	if string(last) != "10.1.0.2" {
		t.Fatalf("last_reserved_ip.0 = %q", last)
	}
}

func TestAllocateReleaseRoundRobinAndErrors(t *testing.T) {
	dir := t.TempDir()
	c := config(t, dir, `{"type":"host-local","ranges":[[{"subnet":"10.2.0.0/29"}]]}`) // .2-.6 free, .1 gateway
	got := map[string]string{}
	for i := 0; i < 5; i++ {
		id := fmt.Sprintf("c%d", i)
		res, err := Allocate(c, id, "eth0")
		if err != nil {
			t.Fatalf("allocate %d: %v", i, err)
		}
		got[id] = res.IPs[0].Address.IP.String()
	}
	_, err := Allocate(c, "c5", "eth0")
	if e, ok := err.(*types.Error); !ok || e.Code != 11 {
		t.Fatalf("exhausted range: %v, want CNI error code 11", err)
	}
	// Same attachment twice is refused and reserves nothing more.
	if _, err := Allocate(c, "c0", "eth0"); err == nil {
		t.Fatal("second ADD of the same attachment succeeded")
	}

	s, err := OpenStore(dir, "net1")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Release("c2", "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Release("c2", "eth0"); err != nil { // idempotent
		t.Fatal(err)
	}
	s.Close()
	res, err := Allocate(c, "c6", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if res.IPs[0].Address.IP.String() != got["c2"] {
		t.Fatalf("after release got %s, want the freed %s", res.IPs[0].Address.IP, got["c2"])
	}
}

func TestRequestedAddress(t *testing.T) {
	dir := t.TempDir()
	base := `{"type":"host-local","ranges":[[{"subnet":"10.3.0.0/24"}],[{"subnet":"fd03::/64"}]]}`
	cases := []struct {
		name, conf, envArgs string
		want                []string
		code                uint
	}{
		{name: "runtimeConfig", conf: `"runtimeConfig":{"ips":["10.3.0.50/24"]}`, want: []string{"10.3.0.50", "fd03::2"}},
		{name: "args.cni.ips both families", conf: `"args":{"cni":{"ips":["10.3.0.51","fd03::51"]}}`, want: []string{"10.3.0.51", "fd03::51"}},
		{name: "CNI_ARGS IP", envArgs: "IgnoreUnknown=1;IP=10.3.0.52", want: []string{"10.3.0.52", "fd03::52"}}, // round robin continues after fd03::51
		{name: "taken", conf: `"runtimeConfig":{"ips":["10.3.0.50"]}`, code: 11},
		{name: "outside every range", conf: `"runtimeConfig":{"ips":["10.9.0.1"]}`, code: 7},
		{name: "gateway", conf: `"runtimeConfig":{"ips":["10.3.0.1"]}`, code: 7},
		{name: "two in one set", conf: `"runtimeConfig":{"ips":["10.3.0.60","10.3.0.61"]}`, code: 7},
		{name: "not an address", conf: `"runtimeConfig":{"ips":["nope"]}`, code: 7},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			extra := ""
			if c.conf != "" {
				extra = "," + c.conf
			}
			js := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"req","ipam":%s%s}`, base, extra)
			conf, _, err := LoadConfig([]byte(js), c.envArgs)
			if err == nil {
				conf.DataDir = dir
				r, aerr := Allocate(conf, fmt.Sprintf("id%d", i), "eth0")
				err = aerr
				if aerr == nil {
					var gotIPs []string
					for _, ipc := range r.IPs {
						gotIPs = append(gotIPs, ipc.Address.IP.String())
					}
					if fmt.Sprint(gotIPs) != fmt.Sprint(c.want) {
						t.Fatalf("got %v, want %v", gotIPs, c.want)
					}
				}
			}
			if c.code == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			e, ok := err.(*types.Error)
			if !ok || e.Code != c.code {
				t.Fatalf("got %v, want CNI error code %d", err, c.code)
			}
			// A failed ADD reserves nothing.
			s, _ := OpenStore(dir, "req")
			defer s.Close()
			if have, _ := s.Lookup(fmt.Sprintf("id%d", i), "eth0"); len(have) != 0 {
				t.Fatalf("failed ADD left reservations %v", have)
			}
		})
	}
}

// Many goroutines, each with its own lock handle as separate processes
// would have, never get the same address.
func TestConcurrentAllocation(t *testing.T) {
	dir := t.TempDir()
	c := config(t, dir, `{"type":"host-local","subnet":"10.4.0.0/24"}`)
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[string]string{}
	for i := 0; i < 60; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id := fmt.Sprintf("c%d", i)
			res, err := Allocate(c, id, "eth0")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			a := res.IPs[0].Address.IP.String()
			if other, dup := seen[a]; dup {
				t.Errorf("%s given to %s and %s", a, other, id)
			}
			seen[a] = id
		}(i)
	}
	wg.Wait()
}

func TestLegacyReservationWithoutIfname(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "net1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "net1", "10.5.0.9"), []byte("oldctr"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore(dir, "net1")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	have, _ := s.Lookup("oldctr", "eth0")
	if len(have) != 1 || !have[0].Equal(net.ParseIP("10.5.0.9")) {
		t.Fatalf("legacy lookup: %v", have)
	}
	if err := s.Release("oldctr", "eth0"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "net1", "10.5.0.9")); !os.IsNotExist(err) {
		t.Fatalf("legacy reservation not released: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name, conf string
		code       uint
	}{
		{"not json", `{"name":`, 6},
		{"no ipam", `{"name":"n","cniVersion":"1.0.0"}`, 7},
		{"no range", `{"name":"n","ipam":{"type":"host-local"}}`, 7},
		{"bad subnet", `{"name":"n","ipam":{"type":"host-local","subnet":"10.0.0.1/24"}}`, 7},
		{"overlapping sets", `{"name":"n","ipam":{"type":"host-local","ranges":[[{"subnet":"10.0.0.0/16"}],[{"subnet":"10.0.1.0/24"}]]}}`, 7},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := LoadConfig([]byte(c.conf), "")
			e, ok := err.(*types.Error)
			if !ok || e.Code != c.code {
				t.Fatalf("got %v, want code %d", err, c.code)
			}
		})
	}
}

// The attachment index is a shortcut, never the truth: an address the
// reference plugin released and gave to another container is not released
// again through a stale index.
func TestStaleIndexIsVerified(t *testing.T) {
	dir := t.TempDir()
	c := config(t, dir, `{"type":"host-local","subnet":"10.6.0.0/24"}`)
	res, err := Allocate(c, "mine", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	addr := res.IPs[0].Address.IP.String()
	path := filepath.Join(dir, "net1", addr)
	// Another tool reassigns the address behind our back.
	if err := os.WriteFile(path, []byte("theirs\r\neth0"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore(dir, "net1")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if have, _ := s.Lookup("mine", "eth0"); len(have) != 0 {
		t.Errorf("stale index reported %v for mine", have)
	}
	if err := s.Release("mine", "eth0"); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(path); err != nil || string(data) != "theirs\r\neth0" {
		t.Errorf("release through a stale index touched another owner's reservation: %q %v", data, err)
	}
	if _, err := os.Stat(s.indexPath("mine", "eth0")); !os.IsNotExist(err) {
		t.Errorf("index not removed: %v", err)
	}
}
