package testbed

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// NetNS is a named network namespace made by the test bed.
type NetNS string

// newNetNS creates a namespace (loopback up, IPv6 off to keep captures quiet)
// and registers its removal.
func newNetNS(t testing.TB, name string) NetNS {
	t.Helper()
	ns := NetNS(uniqueName(name))
	mustRun(t, nil, "ip", "netns", "add", string(ns))
	t.Cleanup(func() { ns.remove() })
	ns.MustExec(t, "ip", "link", "set", "lo", "up")
	ns.MustExec(t, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	return ns
}

// Exec runs a command inside the namespace.
func (ns NetNS) Exec(args ...string) (string, error) {
	return run(nil, "ip", append([]string{"netns", "exec", string(ns)}, args...)...)
}

// MustExec runs a command inside the namespace and fails the test on error.
func (ns NetNS) MustExec(t testing.TB, args ...string) string {
	t.Helper()
	out, err := ns.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Path is the namespace's bind-mount path (usable with setns/netns.GetFromPath).
func (ns NetNS) Path() string { return filepath.Join("/var/run/netns", string(ns)) }

// remove kills every process still in the namespace (by pid) and deletes it.
func (ns NetNS) remove() {
	if out, err := run(nil, "ip", "netns", "pids", string(ns)); err == nil {
		for _, f := range strings.Fields(out) {
			if pid, err := strconv.Atoi(f); err == nil {
				killPid(pid, 2*time.Second)
			}
		}
	}
	_, _ = run(nil, "ip", "netns", "delete", string(ns))
	// What `ip netns exec` mounts over /etc (attach writes resolv.conf there).
	_ = os.RemoveAll(filepath.Join("/etc/netns", string(ns)))
}

// killPid sends SIGTERM, waits up to grace, then SIGKILL.
func killPid(pid int, grace time.Duration) {
	// Never this process: a test thread that entered a namespace makes the
	// process show up in `ip netns pids` for it.
	if pid <= 1 || pid == os.Getpid() || !alive(pid) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 100 && alive(pid); i++ {
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// Field 3, after "(comm)", is the state.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// readPid reads a pidfile; 0 when absent or malformed.
func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// ownerPid extracts <pid> from "ofat-<pid>-...".
func ownerPid(name string) int {
	rest, ok := strings.CutPrefix(name, Prefix)
	if !ok {
		return 0
	}
	head, _, _ := strings.Cut(rest, "-")
	pid, _ := strconv.Atoi(head)
	return pid
}

// cleanLeftovers removes the namespaces and run directories of earlier test
// processes that died without cleaning up: their owner pid is gone.
func cleanLeftovers() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), Prefix+"*"))
	for _, d := range dirs {
		if pid := ownerPid(filepath.Base(d)); pid > 0 && !alive(pid) {
			cleanDockerLeftovers(d)
			pids, _ := filepath.Glob(filepath.Join(d, "*.pid"))
			for _, p := range pids {
				if pid := readPid(p); pid > 0 && isOVS(pid) {
					killPid(pid, 2*time.Second)
				}
			}
			_ = os.RemoveAll(d)
		}
	}
	entries, _ := os.ReadDir("/var/run/netns")
	etc, _ := os.ReadDir("/etc/netns")
	for _, e := range append(entries, etc...) {
		if pid := ownerPid(e.Name()); pid > 0 && !alive(pid) {
			NetNS(e.Name()).remove()
		}
	}
	cleanDockerCgroups()
}

// isOVS guards against killing a recycled pid that is not one of our daemons.
func isOVS(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && strings.Contains(string(b), "ovs")
}
