package main

import (
	"os"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

const manifestPath = "../../../conf/kubernetes/dnet-installer.yaml"

// TestManifest decodes conf/kubernetes/dnet-installer.yaml strictly into
// the Kubernetes API types (an unknown or misspelt field fails) and checks
// that its parts fit together and fit the installer.
func TestManifest(t *testing.T) {
	data, err := os.ReadFile(manifestPath)
	if err != nil {
		t.Fatal(err)
	}
	var (
		sa      corev1.ServiceAccount
		role    rbacv1.ClusterRole
		binding rbacv1.ClusterRoleBinding
		cmRole  rbacv1.Role
		cmBind  rbacv1.RoleBinding
		ds      appsv1.DaemonSet
	)
	targets := map[string]any{"ServiceAccount": &sa, "ClusterRole": &role, "ClusterRoleBinding": &binding, "Role": &cmRole, "RoleBinding": &cmBind, "DaemonSet": &ds}
	seen := map[string]bool{}
	for i, doc := range strings.Split(string(data), "\n---\n") {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		into, ok := targets[tm.Kind]
		if !ok || seen[tm.Kind] {
			t.Fatalf("document %d: unexpected kind %q (or a second one)", i, tm.Kind)
		}
		seen[tm.Kind] = true
		if err := yaml.UnmarshalStrict([]byte(doc), into); err != nil {
			t.Fatalf("%s: %v", tm.Kind, err)
		}
	}
	if len(seen) != len(targets) {
		t.Fatalf("manifest has %v, want each of ServiceAccount, ClusterRole, ClusterRoleBinding, Role, RoleBinding, DaemonSet", seen)
	}
	for _, name := range []string{sa.Name, role.Name, binding.Name, cmRole.Name, cmBind.Name, ds.Name} {
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			t.Errorf("name %q: %v", name, errs)
		}
	}

	// RBAC: the ServiceAccount may get nodes and, in kube-system, the two
	// ConfigMaps that state the cluster's pod network, nothing more.
	if len(role.Rules) != 1 || strings.Join(role.Rules[0].Resources, ",") != "nodes" || strings.Join(role.Rules[0].Verbs, ",") != "get" || strings.Join(role.Rules[0].APIGroups, ",") != "" {
		t.Errorf("ClusterRole rules %+v, want get on core nodes only", role.Rules)
	}
	if len(cmRole.Rules) != 1 || cmRole.Namespace != "kube-system" || strings.Join(cmRole.Rules[0].Resources, ",") != "configmaps" ||
		strings.Join(cmRole.Rules[0].Verbs, ",") != "get" || strings.Join(cmRole.Rules[0].ResourceNames, ",") != "kubeadm-config,kube-proxy" {
		t.Errorf("Role %s/%s rules %+v, want get on ConfigMaps kubeadm-config and kube-proxy only", cmRole.Namespace, cmRole.Name, cmRole.Rules)
	}
	if cmBind.Namespace != cmRole.Namespace || cmBind.RoleRef.Kind != "Role" || cmBind.RoleRef.Name != cmRole.Name ||
		len(cmBind.Subjects) != 1 || cmBind.Subjects[0].Name != sa.Name || cmBind.Subjects[0].Namespace != sa.Namespace {
		t.Errorf("RoleBinding %+v does not give Role %s to ServiceAccount %s/%s", cmBind, cmRole.Name, sa.Namespace, sa.Name)
	}
	if binding.RoleRef.Kind != "ClusterRole" || binding.RoleRef.Name != role.Name {
		t.Errorf("binding refers to %+v, not ClusterRole %s", binding.RoleRef, role.Name)
	}
	if len(binding.Subjects) != 1 || binding.Subjects[0].Kind != "ServiceAccount" || binding.Subjects[0].Name != sa.Name || binding.Subjects[0].Namespace != sa.Namespace {
		t.Errorf("binding subjects %+v, want ServiceAccount %s/%s", binding.Subjects, sa.Namespace, sa.Name)
	}

	// The DaemonSet.
	pod := ds.Spec.Template.Spec
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil || !sel.Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("selector %v does not match the template's labels %v (%v)", ds.Spec.Selector, ds.Spec.Template.Labels, err)
	}
	if pod.ServiceAccountName != sa.Name || ds.Namespace != sa.Namespace {
		t.Errorf("pod runs as %s/%s, want %s/%s", ds.Namespace, pod.ServiceAccountName, sa.Namespace, sa.Name)
	}
	if !pod.HostNetwork {
		t.Error("hostNetwork must be true: the installer runs before any pod network, and looks at the node's links")
	}
	if len(pod.Tolerations) == 0 || pod.Tolerations[0].Operator != corev1.TolerationOpExists || pod.Tolerations[0].Key != "" {
		t.Error("the installer must tolerate every taint: a node without a network is tainted not-ready")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	o, err := parseFlags(c.Args)
	if err != nil || !(o.wait || o.watch) {
		t.Errorf("args %v: %v; want flags the installer takes, with -wait or -watch", c.Args, err)
	}
	if o.clusterCIDR != "" || o.podCIDR != "" {
		t.Errorf("args %v: as shipped the installer reads the pod CIDR and the cluster's pod network from the cluster", c.Args)
	}
	var nodeName bool
	for _, e := range c.Env {
		nodeName = nodeName || (e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName")
	}
	if !nodeName {
		t.Error("NODE_NAME must come from spec.nodeName: the installer reads that Node's pod CIDR")
	}
	hostPaths := map[string]string{}
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	mounted := map[string]string{}
	for _, m := range c.VolumeMounts {
		if _, ok := hostPaths[m.Name]; !ok {
			t.Errorf("mount %s has no hostPath volume", m.Name)
		}
		mounted[m.MountPath] = hostPaths[m.Name]
	}
	want := map[string]string{o.binDir: "/opt/cni/bin", o.confDir: "/etc/cni/net.d"}
	if o.watch {
		// The agent and the plugins it runs see the node's state, cache
		// and locks at the node's own paths, and may change sysctls.
		want["/var/lib/cni"], want["/run/dockernet"] = "/var/lib/cni", "/run/dockernet"
		if sc := c.SecurityContext; sc == nil || sc.Privileged == nil || !*sc.Privileged {
			t.Error("with -watch the container must be privileged: the agent and the DELs it runs change netfilter and sysctls")
		}
	}
	for in, want := range want {
		if mounted[in] != want {
			t.Errorf("the installer writes %s, which mounts host path %q, want %s", in, mounted[in], want)
		}
	}
}
