// Package node reads what the installer needs from the node's Node object.
package node

import (
	"context"
	"fmt"
	"net"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// PodCIDR is the node's IPv4 pod CIDR: the first IPv4 entry of
// spec.podCIDRs, or spec.podCIDR on a cluster that predates the list.
// The controller-manager assigns it shortly after the node registers, so
// an empty one is asked again every interval until ctx ends.
func PodCIDR(ctx context.Context, client kubernetes.Interface, name string, interval time.Duration) (string, error) {
	for {
		n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return "", fmt.Errorf("node %q not found: NODE_NAME must be the node's name (the DaemonSet sets it from spec.nodeName)", name)
		case apierrors.IsForbidden(err):
			return "", fmt.Errorf("reading node %q: %w (the installer's ServiceAccount needs get on nodes: see conf/kubernetes/dnet-installer.yaml)", name, err)
		case err != nil:
			return "", fmt.Errorf("reading node %q: %w", name, err)
		}
		if cidr, err := ipv4CIDR(n); cidr != "" || err != nil {
			return cidr, err
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("node %q has no pod CIDR yet: is the controller-manager's --allocate-node-cidrs on? Otherwise give the installer -pod-cidr", name)
		case <-time.After(interval):
		}
	}
}

func ipv4CIDR(n *corev1.Node) (string, error) {
	cidrs := n.Spec.PodCIDRs
	if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
		cidrs = []string{n.Spec.PodCIDR}
	}
	for _, c := range cidrs {
		ip, _, err := net.ParseCIDR(c)
		if err != nil {
			return "", fmt.Errorf("node %q: pod CIDR %q: %w", n.Name, c, err)
		}
		if ip.To4() != nil {
			return c, nil
		}
	}
	if len(cidrs) > 0 {
		return "", fmt.Errorf("node %q has only IPv6 pod CIDRs %v; conf/kubernetes's network is IPv4", n.Name, cidrs)
	}
	return "", nil
}
