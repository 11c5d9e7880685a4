package node

import (
	"context"
	"fmt"
	"net"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

// ClusterCIDR is the cluster's IPv4 pod network as the cluster states it,
// and where it was found: kubeadm's ClusterConfiguration
// (networking.podSubnet in the kubeadm-config ConfigMap), else
// kube-proxy's configuration (clusterCIDR in the kube-proxy ConfigMap),
// both in kube-system. Both may list one network per family, comma
// separated. "" when neither says (not kubeadm, kube-proxy configured by
// flags, or no permission): the caller falls back to the conflist's.
func ClusterCIDR(ctx context.Context, client kubernetes.Interface) (cidr, source string, err error) {
	for _, s := range clusterSources {
		cm, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, s.configMap, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err), apierrors.IsForbidden(err):
			continue
		case err != nil:
			return "", "", fmt.Errorf("reading ConfigMap kube-system/%s: %w", s.configMap, err)
		}
		doc, ok := cm.Data[s.key]
		if !ok {
			continue
		}
		listed, err := s.field(doc)
		if err != nil {
			return "", "", fmt.Errorf("ConfigMap kube-system/%s, %s: %w", s.configMap, s.key, err)
		}
		if listed == "" {
			continue
		}
		v4, err := firstIPv4(listed)
		if err != nil || v4 == "" {
			return "", "", fmt.Errorf("ConfigMap kube-system/%s, %s: pod network %q: %v", s.configMap, s.key, listed, orNoIPv4(err))
		}
		return v4, "ConfigMap kube-system/" + s.configMap + " " + s.name, nil
	}
	return "", "", nil
}

// clusterSource is one place a cluster states its pod network.
type clusterSource struct {
	configMap, key, name string
	field                func(doc string) (string, error)
}

var clusterSources = []clusterSource{
	{"kubeadm-config", "ClusterConfiguration", "networking.podSubnet", func(doc string) (string, error) {
		var c struct {
			Networking struct {
				PodSubnet string `json:"podSubnet"`
			} `json:"networking"`
		}
		err := yaml.Unmarshal([]byte(doc), &c)
		return c.Networking.PodSubnet, err
	}},
	{"kube-proxy", "config.conf", "clusterCIDR", func(doc string) (string, error) {
		var c struct {
			ClusterCIDR string `json:"clusterCIDR"`
		}
		err := yaml.Unmarshal([]byte(doc), &c)
		return c.ClusterCIDR, err
	}},
}

// firstIPv4 is the first IPv4 network of a comma-separated list.
func firstIPv4(list string) (string, error) {
	for _, s := range strings.Split(list, ",") {
		_, n, err := net.ParseCIDR(strings.TrimSpace(s))
		if err != nil {
			return "", err
		}
		if n.IP.To4() != nil {
			return n.String(), nil
		}
	}
	return "", nil
}

func orNoIPv4(err error) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("no IPv4 network; conf/kubernetes's network is IPv4")
}
