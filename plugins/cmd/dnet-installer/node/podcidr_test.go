package node

import (
	"errors"

	"context"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func nodeWith(name string, cidrs ...string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	n.Spec.PodCIDRs = cidrs
	if len(cidrs) > 0 {
		n.Spec.PodCIDR = cidrs[0]
	}
	return n
}

func TestPodCIDR(t *testing.T) {
	legacy := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "old"}, Spec: corev1.NodeSpec{PodCIDR: "10.244.7.0/24"}}
	for _, tc := range []struct {
		name    string
		objects []runtime.Object
		node    string
		want    string
		wantErr string
	}{
		{name: "spec.podCIDRs", objects: []runtime.Object{nodeWith("n1", "10.244.1.0/24")}, node: "n1", want: "10.244.1.0/24"},
		{name: "dual stack, IPv6 first", objects: []runtime.Object{nodeWith("n2", "fd00:10:244:2::/64", "10.244.2.0/24")}, node: "n2", want: "10.244.2.0/24"},
		{name: "only spec.podCIDR", objects: []runtime.Object{legacy}, node: "old", want: "10.244.7.0/24"},
		{name: "another node's", objects: []runtime.Object{nodeWith("n1", "10.244.1.0/24"), nodeWith("n3", "10.244.3.0/24")}, node: "n3", want: "10.244.3.0/24"},
		{name: "no such node", objects: []runtime.Object{nodeWith("n1", "10.244.1.0/24")}, node: "nx", wantErr: `node "nx" not found: NODE_NAME must be the node's name`},
		{name: "only IPv6", objects: []runtime.Object{nodeWith("n6", "fd00:10:244:6::/64")}, node: "n6", wantErr: "has only IPv6 pod CIDRs"},
		{name: "never assigned", objects: []runtime.Object{nodeWith("n0")}, node: "n0", wantErr: "has no pod CIDR yet: is the controller-manager's --allocate-node-cidrs on?"},
		{name: "malformed", objects: []runtime.Object{nodeWith("nm", "10.244.300.0/24")}, node: "nm", wantErr: `pod CIDR "10.244.300.0/24"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			got, err := PodCIDR(ctx, fake.NewSimpleClientset(tc.objects...), tc.node, 10*time.Millisecond)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestPodCIDRAssignedLater: the controller-manager assigns the CIDR after
// the installer started; it is picked up at the next poll.
func TestPodCIDRAssignedLater(t *testing.T) {
	client := fake.NewSimpleClientset(nodeWith("late"))
	polls := 0
	client.PrependReactor("get", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		polls++
		if polls == 3 {
			n := nodeWith("late", "10.244.9.0/24")
			return true, n, nil
		}
		return false, nil, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := PodCIDR(ctx, client, "late", time.Millisecond)
	if err != nil || got != "10.244.9.0/24" || polls != 3 {
		t.Fatalf("got %q, %v after %d polls; want 10.244.9.0/24 at the third", got, err, polls)
	}
}

// TestPodCIDRForbidden names the missing RBAC rule.
func TestPodCIDRForbidden(t *testing.T) {
	client := fake.NewSimpleClientset()
	client.PrependReactor("get", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrorsForbidden()
	})
	_, err := PodCIDR(context.Background(), client, "n1", time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "needs get on nodes") {
		t.Fatalf("err %v", err)
	}
}

func apierrorsForbidden() error {
	return apierrors.NewForbidden(schema.GroupResource{Resource: "nodes"}, "n1", errors.New("no RBAC"))
}
