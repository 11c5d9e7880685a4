package e2e

import (
	"context"
	"strings"
	"testing"
)

// filterHooks counts the nftables backend's filter base chains (guard,
// guard_out, forward) in the host's table.
func (w *world) filterHooks() int {
	return strings.Count(w.host.MustRun("nft", "list", "table", "ip", "dnet"), "type filter hook")
}

// TestFilterHooksComeAndGo: the nftables backend hooks its filter chains
// only while an element needs them, and the protections hold whenever
// they are asked for:
//   - a Kubernetes pod without hostPorts hooks nothing, and a neighbour
//     routing to it reaches it (the path the later probes are refused on);
//   - a protected container's ADD brings the three hooks, and the
//     neighbour reaches none of its ports, by SYN or by a bare FIN;
//   - the pod's DEL (a neighbour's, to the container) leaves them;
//   - the container's DEL, the last that needed them, removes them, and
//     the next protected ADD brings them back with the protection;
//   - the control: without the guard hook, the neighbour reaches it.
func TestFilterHooksComeAndGo(t *testing.T) {
	const closedPort = 5999 // nothing listens there in a container
	w := newWorld(t, "nftables")
	nbr := w.newNeighbour()
	d := w.libcni(gcVersion)
	ctx := context.Background()
	pod := w.newContainer("pod")
	kube := d.rt(pod, nil)
	kube.Args = [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", "web"}, {"K8S_POD_INFRA_CONTAINER_ID", pod.id}}
	if _, err := d.cni.AddNetworkList(ctx, d.list, kube); err != nil {
		t.Fatal(err)
	}
	podIP := containerIP(t, pod)
	w.waitServing(pod, podIP)
	if n := w.filterHooks(); n != 0 {
		t.Errorf("a Kubernetes pod without hostPorts: %d filter hooks, want none", n)
	}
	w.mustReach(nbr, "tcp", podIP, helloPort)

	other := w.libcniFor(w.network(network{cniVersion: gcVersion, name: "plain", bridge: "dnet1", subnet: "172.30.0.0/16"}))
	protected := func(name string) (*container, string) {
		c := w.newContainer(name)
		if _, err := other.add(c, nil); err != nil {
			t.Fatal(err)
		}
		ip := containerIP(t, c)
		w.waitServing(c, ip)
		if n := w.filterHooks(); n != 3 {
			t.Errorf("after %s's ADD: %d filter hooks, want 3", name, n)
		}
		return c, ip
	}
	refused := func(ip, when string) {
		t.Helper()
		w.mustNotReach(nbr, "tcp", ip, helloPort)
		if got := w.mustSegment(nbr, ip, closedPort, "FIN"); got != "no reply" {
			t.Errorf("%s: a bare FIN from the neighbour to %s:%d got %q, want no reply", when, ip, closedPort, got)
		}
	}
	plain, plainIP := protected("plain")
	refused(plainIP, "with the pod")

	if err := d.cni.DelNetworkList(ctx, d.list, kube); err != nil {
		t.Fatal(err)
	}
	if n := w.filterHooks(); n != 3 {
		t.Errorf("after the pod's DEL: %d filter hooks, want 3", n)
	}
	refused(plainIP, "after the pod's DEL")

	if err := other.del(plain, nil); err != nil {
		t.Fatal(err)
	}
	if n := w.filterHooks(); n != 0 {
		t.Errorf("after the last protected container's DEL: %d filter hooks, want none", n)
	}
	_, againIP := protected("again")
	refused(againIP, "hooked again")

	w.host.MustRun("nft", "delete", "chain", "ip", "dnet", "guard")
	w.mustReach(nbr, "tcp", againIP, helloPort)
	if got := w.mustSegment(nbr, againIP, closedPort, "FIN"); !strings.Contains(got, "RST") {
		t.Errorf("control: a bare FIN without the guard hook got %q, want the container's RST", got)
	}
}
