package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestClientCnitool: cnitool's ADD, CHECK, DEL, GC and STATUS with its
// defaults (NETCONFPATH /etc/cni/net.d, libcni's cache in /var/lib/cni),
// and the operator's repair in between: a flushed ruleset that CHECK
// notices and `dnetctl restore` puts back.
func TestClientCnitool(t *testing.T) {
	h := newClientHost(t, "cnitool")
	cnitool := cnitoolPath(t)
	// The shipped conflist, at 1.1.0: libcni runs GC and STATUS only from
	// that version on (the file says 1.0.0 for older runtimes).
	var conf map[string]any
	if err := json.Unmarshal([]byte(readFile(t, "../conf/10-docker0.conflist")), &conf); err != nil {
		t.Fatal(err)
	}
	conf["cniVersion"] = gcVersion
	writeJSON(t, filepath.Join(h.netD, "10-docker0.conflist"), conf)
	h.env = append(h.env, "CNI_PATH=/opt/cni/bin",
		`CAP_ARGS={"portMappings":[{"hostPort":8080,"containerPort":5000,"protocol":"tcp"},{"hostPort":8080,"containerPort":5000,"protocol":"udp"}]}`)
	tool := func(args ...string) error {
		_, err := h.run(append([]string{cnitool}, args...)...)
		return err
	}

	c1 := h.newContainer("c1")
	h.check("cnitool add", tool("add", "docker0", c1.ns.Path()))
	ip := containerIP(t, c1)
	h.waitServing(c1, ip)
	h.reach(h.client, "tcp", hostAddr, 8080)
	h.reach(h.client, "udp", hostAddr, 8080)
	h.reach(h.host, "tcp", "127.0.0.1", 8080)
	h.check("cnitool check", tool("check", "docker0", c1.ns.Path()))
	h.check("cnitool status", tool("status", "docker0", c1.ns.Path()))

	h.host.MustRun("nft", "flush", "ruleset")
	h.check("cnitool check fails after nft flush ruleset", errUnless(tool("check", "docker0", c1.ns.Path()) != nil, "it passed"))
	_, err := h.run(filepath.Join(h.bin, "dnetctl"), "restore")
	h.check("dnetctl restore", err)
	h.check("cnitool check after restore", tool("check", "docker0", c1.ns.Path()))
	h.reach(h.client, "tcp", hostAddr, 8080)

	h.check("cnitool del", tool("del", "docker0", c1.ns.Path()))
	h.check("nothing left after cnitool del", h.leftovers("docker0", ip))

	// cnitool gc passes no valid attachments: it collects them all (it
	// wants a netns argument, and ignores it).
	c2 := h.newContainer("c2")
	h.check("cnitool add a second container", tool("add", "docker0", c2.ns.Path()))
	ip2 := containerIP(t, c2)
	h.check("cnitool gc", tool("gc", "docker0", c2.ns.Path()))
	_, err = h.request(h.client, "tcp", hostAddr, 8080)
	h.check("the host port is closed after gc", errUnless(err != nil, "it still answers"))
	h.check("nothing left after cnitool gc", h.leftovers("docker0", ip2))
	h.check("cnitool del after gc", tool("del", "docker0", c2.ns.Path()))
	h.check("dnetctl check at the end", h.dnetctlCheck())
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
