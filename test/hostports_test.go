package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dockernet/cni-plugins/plugins/pkg/testenv"
)

// TestWildcardConflicts: a mapping on every address and one on a specific
// address of the same port and protocol exclude each other, in either
// order; another protocol coexists. The refused ADD leaves the holder
// answering and, after the runtime's DEL, nothing of its own.
func TestWildcardConflicts(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, backend)
			d := w.libcni("")
			for i, order := range []struct {
				name          string
				first, second string // hostIP of each; "" is every address
			}{{"wildcard first", "", "127.0.0.1"}, {"specific first", hostAddr2, ""}} {
				port := 7100 + i
				holder, refused := w.newContainer(fmt.Sprintf("h%d", i)), w.newContainer(fmt.Sprintf("r%d", i))
				w.addTo(w.conflist(""), holder, []mapping{{HostPort: port, ContainerPort: helloPort, Protocol: "tcp", HostIP: order.first}})
				_, err := d.add(refused, []mapping{{HostPort: port, ContainerPort: helloPort, Protocol: "tcp", HostIP: order.second}})
				if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("host port %d/tcp", port)) || !strings.Contains(err.Error(), "already published by container "+holder.id[:12]) {
					t.Fatalf("%s: ADD of an overlapping mapping: %v", order.name, err)
				}
				ipR := containerIP(t, refused)
				if err := d.del(refused, nil); err != nil {
					t.Fatalf("%s: DEL after the refused ADD: %v", order.name, err)
				}
				w.assertGone(refused, ipR, nil)
				target := hostAddr2
				if order.first == "" {
					target = hostAddr
				}
				if peer := w.mustReach(w.client, "tcp", target, port); peer != clientAddr {
					t.Errorf("%s: the holder saw %s", order.name, peer)
				}
				// The other protocol is no conflict.
				udp := w.newContainer(fmt.Sprintf("u%d", i))
				w.addTo(w.conflist(""), udp, []mapping{{HostPort: port, ContainerPort: helloPort, Protocol: "udp", HostIP: order.second}})
			}
		})
	}
}

// TestKubernetesHostPorts is Kubernetes' conformance case: pods with the
// same hostPort and different hostIP (127.0.0.1 and the node's address)
// or protocol coexist, and each address answers with its own pod. Each
// pod serves on its own container port, so an answer names the pod.
func TestKubernetesHostPorts(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, backend)
			const hostPort = 7300
			pods := []struct {
				name, hostIP, proto string
				port                int
			}{
				{"pod-local", "127.0.0.1", "tcp", 5301},
				{"pod-node", hostAddr, "tcp", 5302},
				{"pod-node-udp", hostAddr, "udp", 5303},
			}
			for _, p := range pods {
				c := w.newContainer(p.name)
				c.ns.Start(filepath.Join(w.bin, "hello"), "serve", "-port", fmt.Sprint(p.port))
				ip := w.addTo(w.conflist(""), c, []mapping{{HostPort: hostPort, ContainerPort: p.port, Protocol: p.proto, HostIP: p.hostIP}})
				testenv.Eventually(t, 10*time.Second, p.name+" on its own port", func() error {
					_, err := w.request(w.host, "tcp", ip, p.port)
					return err
				})
			}
			w.mustReach(w.host, "tcp", "127.0.0.1", hostPort)
			w.mustReach(w.client, "tcp", hostAddr, hostPort)
			w.mustReach(w.host, "tcp", hostAddr, hostPort)
			w.mustReach(w.client, "udp", hostAddr, hostPort)
			w.mustNotReach(w.client, "tcp", hostAddr2, hostPort)
		})
	}
}

// TestHostListenerNotHijacked: with checkHostListeners (on in the shipped
// conflist), ADD of a port a host process listens on fails, naming the
// process, and the process keeps answering; with the key off, as in the
// conflists Podman writes, the mapping is accepted as the reference does.
func TestHostListenerNotHijacked(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, backend)
			d := w.libcni("")
			const port = 7400
			w.host.Start(filepath.Join(w.bin, "hello"), "serve", "-port", fmt.Sprint(port))
			testenv.Eventually(t, 10*time.Second, "host service", func() error {
				_, err := w.request(w.client, "tcp", hostAddr, port)
				return err
			})
			w.mustReach(w.client, "udp", hostAddr, port)
			for _, proto := range []string{"tcp", "udp"} {
				c := w.newContainer("busy-" + proto)
				_, err := d.add(c, []mapping{{HostPort: port, ContainerPort: helloPort, Protocol: proto}})
				if err == nil || !strings.Contains(err.Error(), fmt.Sprintf(":%d/%s", port, proto)) || !strings.Contains(err.Error(), "process hello") {
					t.Fatalf("ADD of %d/%s with a host listener: %v", port, proto, err)
				}
				ip := containerIP(t, c)
				if err := d.del(c, nil); err != nil {
					t.Fatal(err)
				}
				w.assertGone(c, ip, nil)
			}
			// The host's service still answers, from outside and from the host.
			if peer := w.mustReach(w.client, "tcp", hostAddr, port); peer != clientAddr {
				t.Errorf("host service saw %s", peer)
			}
			w.mustReach(w.client, "udp", hostAddr, port)
			w.mustReach(w.host, "tcp", "127.0.0.1", port)

			// Key off: accepted, as by the reference.
			off := w.libcniFor(w.network(network{portmapKeys: map[string]any{"checkHostListeners": false}}))
			c := w.newContainer("podman-like")
			if _, err := off.add(c, both(port, "")); err != nil {
				t.Fatalf("ADD with checkHostListeners off: %v", err)
			}
			if err := off.del(c, both(port, "")); err != nil {
				t.Fatal(err)
			}
		})
	}
}
