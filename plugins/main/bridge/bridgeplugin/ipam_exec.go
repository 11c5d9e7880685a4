package bridgeplugin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/types/create"
	"github.com/containernetworking/cni/pkg/version"
)

// An IPAM plugin other than our host-local runs as a process, the way
// libcni's invoke.Delegate* runs it: found in CNI_PATH, given this
// process's environment with CNI_COMMAND set, the network config on
// stdin; its result read at the config's version, its error JSON passed
// on as it is. Written here because invoke links OpenTelemetry and with
// it net/http and crypto/tls, whose package inits every bridge process
// paid before its first line of work (GODEBUG=inittrace).

// findPlugin is the plugin called typ, first in CNI_PATH.
func findPlugin(typ string) (string, error) {
	if typ == "" || strings.ContainsRune(typ, os.PathSeparator) {
		return "", fmt.Errorf("invalid plugin name %q", typ)
	}
	paths := filepath.SplitList(os.Getenv("CNI_PATH"))
	for _, dir := range paths {
		p := filepath.Join(dir, typ)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("failed to find plugin %q in path %s", typ, paths)
}

// execIPAM runs plugin typ's command and returns its stdout.
func execIPAM(typ, command string, stdin []byte) ([]byte, error) {
	path, err := findPlugin(typ)
	if err != nil {
		return nil, err
	}
	env := make([]string, 0, len(os.Environ())+1)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CNI_COMMAND=") {
			env = append(env, kv)
		}
	}
	env = append(env, "CNI_COMMAND="+command)
	for try := 0; ; try++ {
		var stdout, stderr bytes.Buffer
		c := exec.Command(path)
		c.Env, c.Stdin, c.Stdout, c.Stderr = env, bytes.NewReader(stdin), &stdout, &stderr
		err := c.Run()
		if err == nil {
			if stderr.Len() > 0 {
				_, _ = stderr.WriteTo(os.Stderr)
			}
			return stdout.Bytes(), nil
		}
		// A plugin binary being replaced as we start it.
		if strings.Contains(err.Error(), "text file busy") && try < 5 {
			time.Sleep(time.Second)
			continue
		}
		return nil, pluginError(err, stdout.Bytes(), stderr.Bytes())
	}
}

// pluginError is the plugin's own CNI error, or one saying what it left.
func pluginError(err error, stdout, stderr []byte) error {
	e := &types.Error{}
	switch {
	case len(stdout) > 0:
		if perr := json.Unmarshal(stdout, e); perr != nil {
			e.Msg = fmt.Sprintf("netplugin failed but error parsing its diagnostic message %q: %v", stdout, perr)
		}
	case len(stderr) > 0:
		e.Msg = fmt.Sprintf("netplugin failed: %q: %v", stderr, err)
	default:
		e.Msg = fmt.Sprintf("netplugin failed with no error message: %v", err)
	}
	return e
}

// execIPAMAdd runs the plugin's ADD and reads its result at the version
// it says, else at the config's.
func execIPAMAdd(typ string, stdin []byte) (types.Result, error) {
	out, err := execIPAM(typ, "ADD", stdin)
	if err != nil {
		return nil, err
	}
	var raw map[string]any
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("failed to unmarshal raw result: %w", err)
	}
	if v, ok := raw["cniVersion"].(string); ok && v != "" {
		return create.Create(v, out)
	}
	confVersion, err := (&version.ConfigDecoder{}).Decode(stdin)
	if err != nil {
		return nil, err
	}
	if raw == nil {
		raw = map[string]any{}
	}
	raw["cniVersion"] = confVersion
	if out, err = json.Marshal(raw); err != nil {
		return nil, err
	}
	return create.Create(confVersion, out)
}
