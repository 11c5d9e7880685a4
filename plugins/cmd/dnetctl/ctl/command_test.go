package ctl

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dockernet/cni-plugins/plugins/pkg/attachment"
	"github.com/dockernet/cni-plugins/plugins/pkg/netfilter"
	"github.com/dockernet/cni-plugins/plugins/pkg/state"
)

// TestFlagsPerCommand: a flag of another command is refused with status
// 2, never taken silently.
func TestFlagsPerCommand(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"list", "-conflist", "x.conflist"}, "flag provided but not defined: -conflist"},
		{[]string{"check", "-valid", "c/eth0"}, "flag provided but not defined: -valid"},
		{[]string{"restore", "extra"}, "unexpected arguments [extra]"},
		{[]string{"gc", "-json"}, "flag provided but not defined: -json"},
		{[]string{"nonsense"}, "usage: dnetctl"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Main(append([]string{"-state-dir", t.TempDir()}, tc.args...), &stdout, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), tc.want)
			}
		})
	}
}

// TestListNamesUnreadableRecords: a record that does not load is named on
// stderr and the exit status is 1, while the attachments of the others
// are listed all the same.
func TestListNamesUnreadableRecords(t *testing.T) {
	dir := t.TempDir()
	store := state.New(dir)
	o := netfilter.Owner{Network: "docker0", ContainerID: "readable", IfName: "eth0"}
	rec := attachment.Record[netfilter.MasqSpec]{Backend: "nftables", Specs: []netfilter.MasqSpec{{Owner: o, IP: net.ParseIP("172.17.0.2"), Bridge: "docker0"}}}
	if err := store.Save("masq", o.Tag(), rec); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "forward"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "forward", "0123456789abcdef.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := Main([]string{"-state-dir", dir, "list"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "0123456789abcdef") || !strings.Contains(stdout.String(), "172.17.0.2") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s\nwant 1, the readable attachment listed and the unreadable record named", code, stdout.String(), stderr.String())
	}
}
