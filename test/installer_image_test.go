package e2e

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/dockernet/cni-plugins/plugins/pkg/install"
	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// TestInstallerImage builds the cluster installer image from
// conf/kubernetes/Containerfile with podman, offline, and runs it as the
// DaemonSet would, with host network and temporary directories in place of
// the node's /opt/cni/bin and /etc/cni/net.d: it installs the plugins and
// the conflist with the given pod CIDR, a rerun writes nothing, and on a
// node where another CNI already has cni0 it picks another bridge.
func TestInstallerImage(t *testing.T) {
	h := newClientHost(t, "installer image", "podman", "runc", "conmon")
	testenv.Built(t, "DNET_BIN", "bin", "dnet-installer")
	h.podmanSetup()
	const image = "localhost/dnet-installer:test"
	script, _ := filepath.Abs("../scripts/installer-image.sh")
	h.mustRun("bash", script, h.bin, image)

	// A node's two directories, made as the DaemonSet's hostPath
	// volumes (DirectoryOrCreate) make them.
	node := func() (binDir, confDir string) {
		d := t.TempDir()
		binDir, confDir = filepath.Join(d, "opt-cni-bin"), filepath.Join(d, "etc-cni-net.d")
		for _, dir := range []string{binDir, confDir} {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return binDir, confDir
	}
	runInstaller := func(binDir, confDir string, args ...string) (string, error) {
		return h.run(append([]string{"podman", "run", "--rm", "--network", "host",
			"-v", binDir + ":/host/opt/cni/bin", "-v", confDir + ":/host/etc/cni/net.d", image}, args...)...)
	}
	binDir, confDir := node()
	out, err := runInstaller(binDir, confDir, "-pod-cidr", "10.244.5.0/24")
	h.check("the installer runs with -pod-cidr", err)
	h.check("it reports what it wrote", errUnless(strings.Contains(out, "network dockernet on bridge cni0, 10.244.5.0/24: 5 files written"), out))
	for _, p := range install.PluginBinaries {
		got, _ := os.ReadFile(filepath.Join(binDir, p))
		want, _ := os.ReadFile(filepath.Join(h.bin, p))
		h.check("plugin "+p+" is the one built", errUnless(len(got) > 0 && bytes.Equal(got, want), "differs or is missing"))
	}
	written, _ := os.ReadFile(filepath.Join(confDir, "10-dockernet.conflist"))
	want := renderKubernetes(t, "10.244.5.0/24")
	h.check("the conflist has the node's pod CIDR", errUnless(bytes.Equal(written, want), string(written)))
	entries, _ := os.ReadDir(confDir)
	h.check("nothing but the conflist in net.d", errUnless(len(entries) == 1, "found more"))

	out, err = runInstaller(binDir, confDir, "-pod-cidr", "10.244.5.0/24")
	h.check("a rerun writes nothing", errUnless(err == nil && strings.Contains(out, ": 0 files written"), out))

	_, err = runInstaller(binDir, confDir)
	h.check("without -pod-cidr or a cluster it stops with the reason", errUnless(err != nil && strings.Contains(err.Error(), "no -pod-cidr and no NODE_NAME"), "it did not"))

	// As shipped, on a cluster whose pod network is not 10.244.0.0/16:
	// the installer reads its node's pod CIDR and the cluster's pod
	// network from the API server (here a fake one, in the host netns).
	api := fakeAPIServer(t, h.host, "n1", "10.66.3.0/24", "10.66.0.0/16")
	binDir, confDir = node()
	out, err = h.run([]string{"podman", "run", "--rm", "--network", "host",
		"-v", binDir + ":/host/opt/cni/bin", "-v", confDir + ":/host/etc/cni/net.d", "-v", api.secrets + ":/var/run/secrets/kubernetes.io/serviceaccount:ro",
		"-e", "NODE_NAME=n1", "-e", "KUBERNETES_SERVICE_HOST=127.0.0.1", "-e", "KUBERNETES_SERVICE_PORT=" + api.port,
		image, "-conflist", "10-dockernet.conflist"}...) // the default, in place of the image's -wait
	h.check("as shipped, on a 10.66.0.0/16 cluster, it installs", errUnless(err == nil && strings.Contains(out, "network dockernet on bridge cni0, 10.66.3.0/24"), fmt.Sprint(out, err)))
	h.check("it says where the pod network came from", errUnless(strings.Contains(out, "the cluster's pod network is 10.66.0.0/16 (ConfigMap kube-system/kubeadm-config networking.podSubnet)"), out))
	written, _ = os.ReadFile(filepath.Join(confDir, "10-dockernet.conflist"))
	h.check("the conflist leaves 10.66.0.0/16 unmasqueraded", errUnless(strings.Contains(string(written), `"10.66.0.0/16"`) && !strings.Contains(string(written), "10.244."), string(written)))

	// Another CNI's bridge already on the node.
	h.host.MustRun("ip", "link", "add", "cni0", "type", "bridge")
	binDir, confDir = node()
	out, err = runInstaller(binDir, confDir, "-pod-cidr", "10.244.5.0/24")
	h.check("beside another cni0 it installs on dnet0", errUnless(err == nil && strings.Contains(out, "network dockernet on bridge dnet0, 10.244.5.0/24"), fmt.Sprint(out, err)))
}

// renderKubernetes is conf/kubernetes's conflist as the installer renders
// it for a node's pod CIDR.
func renderKubernetes(t *testing.T, cidr string) []byte {
	t.Helper()
	dir := t.TempDir()
	_, err := install.Run(install.Options{Template: []byte(readFile(t, "../conf/kubernetes/10-dockernet.conflist")),
		FileName: "10-dockernet.conflist", ConfDir: dir, Subnet: cidr}, emptyHost{})
	if err != nil {
		t.Fatal(err)
	}
	return []byte(readFile(t, filepath.Join(dir, "10-dockernet.conflist")))
}

// emptyHost is a host with nothing on it, for rendering only.
type emptyHost struct{}

func (emptyHost) LinkExists(string) bool           { return false }
func (emptyHost) InUse() ([]install.Prefix, error) { return nil, nil }

// apiServer is a fake Kubernetes API server for the installer: its Node
// and the kubeadm-config ConfigMap, over TLS on 127.0.0.1 of netns n, and
// the service account directory (token, ca.crt) a pod would have.
type apiServer struct{ port, secrets string }

func fakeAPIServer(t *testing.T, n *testenv.NS, nodeName, podCIDR, clusterCIDR string) apiServer {
	t.Helper()
	objects := map[string]any{
		"/api/v1/nodes/" + nodeName: map[string]any{"kind": "Node", "apiVersion": "v1", "metadata": map[string]any{"name": nodeName},
			"spec": map[string]any{"podCIDR": podCIDR, "podCIDRs": []string{podCIDR}}},
		"/api/v1/namespaces/kube-system/configmaps/kubeadm-config": map[string]any{"kind": "ConfigMap", "apiVersion": "v1",
			"metadata": map[string]any{"name": "kubeadm-config", "namespace": "kube-system"},
			"data":     map[string]string{"ClusterConfiguration": "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  podSubnet: " + clusterCIDR + "\n  serviceSubnet: 10.96.0.0/12\n"}},
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		obj, ok := objects[r.URL.Path]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			obj = map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}
		}
		_ = json.NewEncoder(w).Encode(obj)
	}))
	// A socket belongs to the netns it was made in.
	err := ns.WithNetNSPath(n.Path(), func(ns.NetNS) error {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		srv.Listener = ln
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), ca, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("test-token"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return apiServer{port: port, secrets: dir}
}
