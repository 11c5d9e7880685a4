package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// privateMounts is a private slave mount namespace kept alive by a holder
// process: netns mounts that tests make later still show in it, and
// nothing mounted in it shows outside. The client suites and the cluster
// nodes run their runtimes and daemons in one, with the paths those
// default to (/etc/cni/net.d, /var/lib/cni, /run/flannel, …) bound to the
// test's own directories.
type privateMounts struct {
	holder *exec.Cmd // `sleep` that keeps the mount namespace alive
}

// newPrivateMounts makes the namespace and runs `mount ARGS…` in it for
// each of mounts (the last argument is the mount point, made on the
// machine for the run when missing; see ensureMountPoint).
func newPrivateMounts(t *testing.T, mounts [][]string) *privateMounts {
	t.Helper()
	// The holder says when it is in its own mount namespace: entering its
	// namespace before that would mount over the machine's directories.
	m := &privateMounts{holder: exec.Command("unshare", "--mount", "--propagation", "slave", "sh", "-c", "echo ready; exec sleep infinity")}
	ready, err := m.holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.holder.Start(); err != nil {
		t.Fatalf("unshare --mount: %v", err)
	}
	before := netnsFiles()
	t.Cleanup(func() {
		_ = m.holder.Process.Kill()
		_ = m.holder.Wait()
		removeStrayNetnsFiles(before)
	})
	line, _ := bufio.NewReader(ready).ReadString('\n')
	own, _ := os.Readlink("/proc/self/ns/mnt")
	theirs, _ := os.Readlink("/proc/" + strconv.Itoa(m.holder.Process.Pid) + "/ns/mnt")
	if line != "ready\n" || theirs == "" || theirs == own {
		t.Fatalf("no private mount namespace (holder said %q; its namespace %q, ours %q)", line, theirs, own)
	}
	for _, args := range mounts {
		ensureMountPoint(t, args[len(args)-1])
		if out, err := m.nsenterMount(append([]string{"mount"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("mount %v in the private mount namespace: %v: %s", args, err, out)
		}
	}
	return m
}

// nsenterMount runs args in the holder's mount namespace, with the
// holder's root and working directory: entering a mount namespace resets
// both to the namespace's own, which is not ours when the suite runs in a
// chroot.
func (m *privateMounts) nsenterMount(args ...string) *exec.Cmd {
	return exec.Command("nsenter", append(m.enterArgs(), append([]string{"--"}, args...)...)...)
}

// inNetns runs args in the mount namespace and the network namespace at
// netnsPath.
func (m *privateMounts) inNetns(netnsPath string, args ...string) *exec.Cmd {
	prefix := m.netnsPrefix(netnsPath)
	return exec.Command(prefix[0], append(prefix[1:], args...)...)
}

// netnsPrefix is the command line that enters the mount namespace and
// the network namespace at netnsPath, before the command to run there.
func (m *privateMounts) netnsPrefix(netnsPath string) []string {
	return append(append([]string{"nsenter"}, m.enterArgs()...), "--net="+netnsPath, "--")
}

func (m *privateMounts) enterArgs() []string {
	return []string{"--target", strconv.Itoa(m.holder.Process.Pid), "--mount", "--root", "--wd"}
}
