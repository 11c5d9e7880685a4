package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// Call is one direct plugin invocation, the way a runtime makes it.
type Call struct {
	Command     string // ADD, DEL, CHECK, VERSION, STATUS
	ContainerID string
	Netns       string
	IfName      string
	Args        string // CNI_ARGS
	Conf        []byte
}

// Exec runs plugin (a file in binDir) inside namespace n and returns its
// stdout. A failing plugin's CNI error JSON comes back as a *types.Error.
func (n *NS) Exec(binDir, plugin string, c Call) ([]byte, error) {
	env := append(os.Environ(),
		"CNI_COMMAND="+c.Command,
		"CNI_CONTAINERID="+c.ContainerID,
		"CNI_NETNS="+c.Netns,
		"CNI_IFNAME="+c.IfName,
		"CNI_ARGS="+c.Args,
		"CNI_PATH="+binDir,
	)
	return NetnsExec(n.Name, nil).ExecPlugin(context.Background(), filepath.Join(binDir, plugin), c.Conf, env)
}

// runPlugin runs cmd, a plugin at path run through a wrapper that enters
// its namespaces, as a runtime runs a plugin.
// A successful plugin's stderr goes to quiet, when it is not nil.
func runPlugin(cmd *exec.Cmd, path string, stdin []byte, env []string, quiet io.Writer) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = env, bytes.NewReader(stdin), &stdout, &stderr
	err := cmd.Run()
	if err == nil && quiet != nil && stderr.Len() > 0 {
		fmt.Fprintf(quiet, "%s %s: %s", filepath.Base(path), commandOf(env), stderr.String())
	}
	if err != nil {
		e := &types.Error{}
		if jerr := json.Unmarshal(stdout.Bytes(), e); jerr == nil && (e.Code != 0 || e.Msg != "") {
			return stdout.Bytes(), e
		}
		return stdout.Bytes(), fmt.Errorf("%s: %v: stdout %q stderr %q", path, err, stdout.String(), strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// WrappedExec is a libcni invoke.Exec that runs every plugin behind a
// command that enters the namespaces playing a host: `ip netns exec NS`
// (NetnsExec), or nsenter into a cluster node's mount and network
// namespaces. libcni itself is what containerd and CRI-O use, so tests
// through it see what those runtimes would.
type WrappedExec struct {
	Prefix []string // the command, to which the plugin's path is appended
	Env    []string // added to each plugin's environment, overriding (PATH, say)
	// Stderr, when set, gets what a plugin that succeeded wrote to stderr,
	// each write led by the plugin and its command.
	Stderr io.Writer
}

// NetnsExec runs every plugin inside network namespace ns.
func NetnsExec(ns string, env []string) *WrappedExec {
	return &WrappedExec{Prefix: []string{"ip", "netns", "exec", ns}, Env: env}
}

func (e *WrappedExec) ExecPlugin(ctx context.Context, pluginPath string, stdinData []byte, environ []string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, e.Prefix[0], append(append([]string{}, e.Prefix[1:]...), pluginPath)...)
	return runPlugin(cmd, pluginPath, stdinData, append(environ, e.Env...), e.Stderr)
}

func (e *WrappedExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

func (e *WrappedExec) Decode(jsonBytes []byte) (version.PluginInfo, error) {
	return (&version.PluginDecoder{}).Decode(jsonBytes)
}

// WantCode fails the test unless err is a CNI error with code and a message containing msg.
func WantCode(t testing.TB, err error, code uint, msg string) {
	t.Helper()
	e, ok := err.(*types.Error)
	if !ok || e.Code != code || !strings.Contains(e.Msg, msg) {
		t.Fatalf("got %v, want CNI error %d containing %q", err, code, msg)
	}
}

// commandOf is the CNI_COMMAND in env (the last one, as the plugin sees it).
func commandOf(env []string) string {
	cmd := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "CNI_COMMAND="); ok {
			cmd = v
		}
	}
	return cmd
}
