package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// holderScript prepares an engine's private mount namespace and keeps it
// alive. The namespace is a slave of the host's, so mounts dockerd makes
// (overlay layers, netns bind mounts) stay inside it and vanish with it.
// /etc/docker must exist (docker.io ships it): creating it here would
// create it on the host's filesystem.
const holderScript = `set -e
dir=$1
mount -t tmpfs -o mode=0755 ofat-run /run
mkdir -p /run/docker/plugins
mount --bind "$dir/plugins" /run/docker/plugins
mount -t tmpfs -o mode=0755 ofat-etc-docker /etc/docker
echo ok > "$dir/mnt-ready"
exec sleep infinity
`

// startHolder creates the mount namespace and records its identity (the
// namespace inode) in Dir/mntns, so that a later run can find what a
// crashed test left (see cleanDockerLeftovers).
func (d *Docker) startHolder(t testing.TB) {
	t.Helper()
	cmd := exec.Command("unshare", "--mount", "--propagation", "slave", "sh", "-c", holderScript, "ofat-holder", d.Dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("mount namespace for %s: %v", d, err)
	}
	d.holder = cmd
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	Eventually(t, 10*time.Second, func() bool {
		select {
		case <-exited:
			t.Fatalf("mount namespace holder for %s exited: %s", d, out)
		default:
		}
		_, err := os.Stat(filepath.Join(d.Dir, "mnt-ready"))
		return err == nil
	}, "mount namespace for %s not ready", d)
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	d.mntNS = ns
	if err := os.WriteFile(filepath.Join(d.Dir, "mntns"), []byte(ns+"\n"+d.cgroup+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// destroy ends the engine and everything it started: dockerd (briefly
// graceful: the plugin a test served may be gone already), every process
// in its mount namespace (containerd, shims, the holder), every process in
// its cgroups (the containers, which have mount namespaces of their own),
// then the cgroups and the files.
func (d *Docker) destroy(t testing.TB) {
	d.stop(5 * time.Second)
	if t.Failed() {
		t.Logf("%s log (tail):\n%s", d, d.LogTail(6000))
	}
	killDockerNS(d.mntNS, d.cgroup)
	if d.holder != nil {
		killPid(d.holder.Process.Pid, time.Second)
	}
	_ = os.RemoveAll(d.Dir)
}

// killDockerNS kills the processes of a Docker bed: those in mount
// namespace mntNS and those in cgroup (in any hierarchy), then removes the
// cgroup directories.
func killDockerNS(mntNS, cgroup string) {
	if mntNS != "" {
		// Again until none is left: a dying engine can start a process
		// (a shim's clean-up) after the list was taken, and a killed one
		// stays in the namespace until it has exited.
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
			pids := pidsInMountNS(mntNS)
			if len(pids) == 0 {
				break
			}
			for _, pid := range pids {
				killPid(pid, time.Second)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if cgroup == "" || strings.ContainsAny(cgroup, "/.") {
		return
	}
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", cgroup))
	for _, dir := range dirs {
		for _, pid := range cgroupPids(dir) {
			killPid(pid, 0)
		}
	}
	for _, dir := range dirs {
		removeCgroupTree(dir)
	}
}

// pidsInMountNS lists the processes whose mount namespace is ns
// ("mnt:[inode]"), by reading /proc/<pid>/ns/mnt.
func pidsInMountNS(ns string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if l, err := os.Readlink("/proc/" + e.Name() + "/ns/mnt"); err == nil && l == ns {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cgroupPids lists the processes in a cgroup directory and below it.
func cgroupPids(dir string) []int {
	var pids []int
	_ = filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			return nil
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}

// removeCgroupTree removes a cgroup directory and its children, deepest
// first (cgroup directories go with rmdir, never with unlink).
func removeCgroupTree(dir string) {
	var all []string
	_ = filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err == nil && e.IsDir() {
			all = append(all, p)
		}
		return nil
	})
	for i := len(all) - 1; i >= 0; i-- {
		_ = syscall.Rmdir(all[i])
	}
}

// cleanDockerLeftovers removes what a crashed test process's engines left
// in its run directory dir: the processes of their mount namespaces
// (recorded in <node dir>/docker/mntns; the namespace inode tells a
// recycled pid from ours) and their cgroups.
func cleanDockerLeftovers(dir string) {
	b, err := os.ReadFile(filepath.Join(dir, "docker", "mntns"))
	if err != nil {
		return
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return
	}
	killDockerNS(f[0], f[1])
}

// cleanDockerCgroups removes top-level cgroups named "ofat-<pid>-..." whose
// owner process is gone (a crashed test whose run directory is gone too).
func cleanDockerCgroups() {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", Prefix+"*"))
	for _, dir := range dirs {
		if pid := ownerPid(filepath.Base(dir)); pid > 0 && !alive(pid) {
			killDockerNS("", filepath.Base(dir))
		}
	}
}
