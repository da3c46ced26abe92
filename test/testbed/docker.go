package testbed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// DockerAPIVersion is the Engine API version of Debian's dockerd 20.10. The
// docker client (28.x here) is told to speak it through DOCKER_API_VERSION;
// API features it lacks (docker run --mac-address wants 1.44) go through
// Docker.API.
const DockerAPIVersion = "1.41"

// Docker is a real Docker Engine (dockerd from Debian's docker.io) serving
// one test node: it runs in the node's network namespace (entered with
// nsenter --net: `ip netns exec` would remount /sys and dockerd then fails
// with "Devices cgroup isn't mounted") and in a private mount namespace of
// its own, where /run and /etc/docker are fresh tmpfs mounts and
// /run/docker/plugins is PluginDir. So the paths dockerd 20.10 fixes
// (/run/docker/plugins, /etc/docker/key.json, containerd's /run/containerd)
// are private to this engine: a plugin socket put in one node's PluginDir
// is seen by that node's dockerd only. Everything else is separated by
// flags (data and exec roots, API socket, pidfile, config file, cgroup
// parent), all under Dir.
//
// The mount namespace is held by a small holder process and outlives
// dockerd restarts (Stop/Start, Kill/Start), as a host's mounts do.
type Docker struct {
	Node *Node
	Dir  string // everything of this engine: data, exec, plugins, sockets, log

	opts     DockerOpts
	holder   *exec.Cmd // keeps the mount namespace
	mntNS    string    // "mnt:[inode]" of that namespace
	cgroup   string    // --cgroup-parent, a top-level cgroup in every hierarchy
	cmd      *exec.Cmd // the running dockerd, nil when stopped
	exited   chan struct{}
	imported bool
	client   *http.Client
}

// DockerOpts tunes an engine. The zero value is what StartDocker uses.
type DockerOpts struct {
	// Daemon adds or overrides daemon.json keys (e.g. "live-restore": true).
	Daemon map[string]any
}

// dockerStopGrace bounds a graceful Stop: dockerd retries an absent
// plugin for ~15 s per call it makes while stopping containers.
const dockerStopGrace = 2 * time.Minute

// RequireDocker is Require plus the programs a Docker test bed runs.
func RequireDocker(t testing.TB) {
	t.Helper()
	Require(t)
	RequireTools(t, "dockerd", "containerd", "runc", "docker", "nsenter", "unshare", "busybox")
	if _, err := os.Stat("/etc/docker"); err != nil {
		missing(t, "/etc/docker is missing (the bed mounts a private tmpfs there; reinstall docker.io)")
	}
}

// StartDocker starts an engine on node n with the default options and
// waits until its API answers. It is stopped and everything it made
// (processes, mounts, cgroups, files) removed in t.Cleanup.
func StartDocker(t testing.TB, n *Node) *Docker {
	t.Helper()
	return StartDockerWith(t, n, DockerOpts{})
}

// StartDockerWith is StartDocker with options.
func StartDockerWith(t testing.TB, n *Node, o DockerOpts) *Docker {
	t.Helper()
	RequireDocker(t)
	d := &Docker{Node: n, Dir: filepath.Join(n.Dir, "docker"), opts: o, cgroup: uniqueName("docker-" + n.Name)}
	for _, sub := range []string{"plugins", "data", "exec", "cli"} {
		if err := os.MkdirAll(filepath.Join(d.Dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d.client = unixClient(d.Socket())
	t.Cleanup(func() { d.destroy(t) })
	d.writeConfig(t)
	d.startHolder(t)
	d.Start(t)
	return d
}

// Socket is the path of the engine's API socket.
func (d *Docker) Socket() string { return filepath.Join(d.Dir, "docker.sock") }

// Host is the DOCKER_HOST value for this engine.
func (d *Docker) Host() string { return "unix://" + d.Socket() }

// PluginDir is the directory this engine's dockerd sees as
// /run/docker/plugins: a plugin's socket (<name>.sock) or spec file
// (<name>.spec) put here is discovered by this engine only.
func (d *Docker) PluginDir() string { return filepath.Join(d.Dir, "plugins") }

// ExecRoot is dockerd's --exec-root (network namespaces of containers are
// <ExecRoot>/netns/<id> inside the engine's mount namespace).
func (d *Docker) ExecRoot() string { return filepath.Join(d.Dir, "exec") }

// Env is the environment for the docker client to talk to this engine.
func (d *Docker) Env() []string {
	return []string{"DOCKER_HOST=" + d.Host(), "DOCKER_API_VERSION=" + DockerAPIVersion,
		"DOCKER_CONFIG=" + filepath.Join(d.Dir, "cli")}
}

// Pid is dockerd's pid, 0 when it is not running.
func (d *Docker) Pid() int {
	if d.cmd == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// Run runs the docker client against this engine and returns its combined
// output; it fails the test on error.
func (d *Docker) Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := d.RunErr(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// RunErr is Run returning the error (which carries the output).
func (d *Docker) RunErr(args ...string) (string, error) {
	return run(d.Env(), "docker", args...)
}

// API sends one Engine API request (path without the version, e.g.
// "/containers/create?name=x") with body as JSON when not nil, and returns
// the status and the response body.
func (d *Docker) API(method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://docker/v"+DockerAPIVersion+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("docker API %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// Start starts dockerd (again, after Stop or Kill) and waits until its API
// answers.
func (d *Docker) Start(t testing.TB) {
	t.Helper()
	if d.cmd != nil {
		t.Fatalf("dockerd of %s is already running (pid %d)", d.Node, d.Pid())
	}
	_ = os.Remove(filepath.Join(d.Dir, "docker.pid")) // a killed dockerd leaves it
	log, err := os.OpenFile(filepath.Join(d.Dir, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command("nsenter", "--mount=/proc/"+fmt.Sprint(d.holder.Process.Pid)+"/ns/mnt",
		"--net="+d.Node.NS.Path(), "dockerd",
		"--data-root", filepath.Join(d.Dir, "data"), "--exec-root", d.ExecRoot(),
		"-H", d.Host(), "--pidfile", filepath.Join(d.Dir, "docker.pid"),
		"--config-file", filepath.Join(d.Dir, "daemon.json"), "--cgroup-parent", "/"+d.cgroup)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a ^C to go test does not hit it mid-test
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dockerd: %v", err)
	}
	d.cmd, d.exited = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(d.exited)
	d.waitReady(t, time.Minute)
}

// waitReady polls /_ping until it answers 200 or dockerd exits.
func (d *Docker) waitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-d.exited:
			d.cmd = nil
			t.Fatalf("dockerd of %s exited while starting:\n%s", d.Node, d.LogTail(4000))
		default:
		}
		if st, _, err := d.API("GET", "/_ping", nil); err == nil && st == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dockerd of %s not answering after %v:\n%s", d.Node, timeout, d.LogTail(4000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops dockerd as a service manager would: SIGTERM (dockerd stops
// its containers unless live-restore is on, then its containerd), SIGKILL
// if it is still running after a grace period.
func (d *Docker) Stop(t testing.TB) {
	t.Helper()
	if d.cmd == nil {
		t.Fatalf("dockerd of %s is not running", d.Node)
	}
	d.stop(dockerStopGrace)
}

// Kill sends SIGKILL to dockerd (a crash). The containerd it started dies
// with it (dockerd starts it with a parent-death signal); the shims and
// containers stay, and the next Start's containerd takes them over.
func (d *Docker) Kill(t testing.TB) {
	t.Helper()
	if d.cmd == nil {
		t.Fatalf("dockerd of %s is not running", d.Node)
	}
	d.stop(0)
	d.forgetContainerd(t)
}

// forgetContainerd waits until the killed dockerd's containerd is gone and
// removes its pidfile: until PID 1 reaps it, the zombie looks alive to the
// next dockerd, which would then wait for it and fail ("timeout waiting
// for containerd to start").
func (d *Docker) forgetContainerd(t testing.TB) {
	t.Helper()
	pidfile := filepath.Join(d.ExecRoot(), "containerd", "containerd.pid")
	pid := readPid(pidfile)
	if pid == 0 {
		return
	}
	Eventually(t, 10*time.Second, func() bool { return !alive(pid) }, "containerd %d of %s outlived dockerd", pid, d)
	_ = os.Remove(pidfile)
}

// Restart is Stop then Start.
func (d *Docker) Restart(t testing.TB) {
	t.Helper()
	d.Stop(t)
	d.Start(t)
}

func (d *Docker) stop(grace time.Duration) {
	if d.cmd == nil {
		return
	}
	if grace > 0 {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
			d.cmd = nil
			return
		case <-time.After(grace):
		}
	}
	_ = d.cmd.Process.Kill()
	<-d.exited
	d.cmd = nil
}

// LogTail returns the last n bytes of dockerd's log.
func (d *Docker) LogTail(n int) string {
	b, err := os.ReadFile(filepath.Join(d.Dir, "dockerd.log"))
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// String names the engine in test output.
func (d *Docker) String() string { return "dockerd of " + d.Node.String() }

func (d *Docker) writeConfig(t testing.TB) {
	t.Helper()
	cfg := map[string]any{
		"storage-driver": storageDriver(),
		// Containers that ignore SIGTERM (a shell as pid 1) make every
		// stop wait this long.
		"shutdown-timeout": 2,
	}
	for k, v := range d.opts.Daemon {
		cfg[k] = v
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.Dir, "daemon.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// storageDriver is overlay2 where the kernel has overlayfs (it does here,
// over ext4), vfs (slow, copies every layer) elsewhere.
func storageDriver() string {
	b, err := os.ReadFile("/proc/filesystems")
	if err == nil && strings.Contains(string(b), "\toverlay\n") {
		return "overlay2"
	}
	return "vfs"
}

func unixClient(socket string) *http.Client {
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", socket)
	}
	return &http.Client{Transport: &http.Transport{DialContext: dial}, Timeout: 2 * time.Minute}
}
