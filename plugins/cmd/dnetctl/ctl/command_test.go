package ctl

import (
	"bytes"
	"strings"
	"testing"
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
