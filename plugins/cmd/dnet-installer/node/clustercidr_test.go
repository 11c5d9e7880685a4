package node

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func configMap(name, key, doc string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-system"}, Data: map[string]string{key: doc}}
}

func kubeadm(podSubnet string) *corev1.ConfigMap {
	return configMap("kubeadm-config", "ClusterConfiguration",
		"apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  dnsDomain: cluster.local\n  podSubnet: "+podSubnet+"\n  serviceSubnet: 10.96.0.0/12\n")
}

func kubeProxy(clusterCIDR string) *corev1.ConfigMap {
	return configMap("kube-proxy", "config.conf",
		"apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nclusterCIDR: "+clusterCIDR+"\nmode: iptables\n")
}

func TestClusterCIDR(t *testing.T) {
	for _, tc := range []struct {
		name         string
		objects      []runtime.Object
		want, source string
		wantErr      string
	}{
		{name: "kubeadm", objects: []runtime.Object{kubeadm("10.66.0.0/16")}, want: "10.66.0.0/16", source: "kubeadm-config networking.podSubnet"},
		{name: "kubeadm before kube-proxy", objects: []runtime.Object{kubeadm("10.66.0.0/16"), kubeProxy("10.77.0.0/16")}, want: "10.66.0.0/16", source: "kubeadm-config"},
		{name: "kube-proxy alone", objects: []runtime.Object{kubeProxy("10.77.0.0/16")}, want: "10.77.0.0/16", source: "kube-proxy clusterCIDR"},
		{name: "kubeadm without podSubnet", objects: []runtime.Object{kubeadm(`""`), kubeProxy("10.77.0.0/16")}, want: "10.77.0.0/16", source: "kube-proxy"},
		{name: "dual stack, IPv6 first", objects: []runtime.Object{kubeadm("fd00:10:244::/56,10.66.0.0/16")}, want: "10.66.0.0/16"},
		{name: "a host address, not a network", objects: []runtime.Object{kubeadm("10.66.1.1/16")}, want: "10.66.0.0/16"},
		{name: "neither", objects: nil, want: ""},
		{name: "only IPv6", objects: []runtime.Object{kubeadm("fd00:10:244::/56")}, wantErr: "no IPv4 network"},
		{name: "malformed", objects: []runtime.Object{kubeProxy("10.300.0.0/16")}, wantErr: `kube-system/kube-proxy, config.conf: pod network "10.300.0.0/16"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, source, err := ClusterCIDR(context.Background(), fake.NewSimpleClientset(tc.objects...))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want || !strings.Contains(source, tc.source) {
				t.Fatalf("got %q from %q (%v), want %q from %q", got, source, err, tc.want, tc.source)
			}
		})
	}
}

// Without permission to read the ConfigMaps (an older manifest's RBAC)
// the installer falls back to the conflist; any other error stops it.
func TestClusterCIDRErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		wantErr bool
	}{
		{"forbidden", apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "kubeadm-config", errors.New("no")), false},
		{"server down", errors.New("connection refused"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := fake.NewSimpleClientset(kubeProxy("10.77.0.0/16"))
			client.PrependReactor("get", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, tc.err })
			got, _, err := ClusterCIDR(context.Background(), client)
			if (err != nil) != tc.wantErr || got != "" {
				t.Fatalf("got %q, %v; want an error: %v", got, err, tc.wantErr)
			}
		})
	}
}
