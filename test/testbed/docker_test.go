package testbed

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestDockerInNodeNamespace: a container runs with --network none, and the
// engine lives in the node's network namespace: its docker0 bridge is
// there (ip link in the node) and not in the root namespace.
func TestDockerInNodeNamespace(t *testing.T) {
	n := NewNode(t, "dk")
	d := StartDocker(t, n)
	img := d.Image(t)
	if out := d.Run(t, "run", "--rm", "--network", "none", img, "ip", "-o", "link"); !strings.Contains(out, "lo:") || strings.Contains(out, "eth0") {
		t.Fatalf("container with --network none has other links than lo:\n%s", out)
	}
	if out := d.Run(t, "run", "--rm", "--network", "none", img, "true"); out != "" {
		t.Fatalf("docker run true printed %q", out)
	}
	n.Exec(t, "ip", "link", "show", "docker0")
	if out, err := run(nil, "ip", "-o", "link", "show"); err != nil || strings.Contains(out, " docker0:") {
		t.Fatalf("docker0 in the root namespace (err %v):\n%s", err, out)
	}
}

// TestDockerTwoEnginesPluginDirs: two engines run in parallel, and a
// plugin socket in host A's plugin dir serves A's engine only. The probe
// plugin records the calls it gets: A's network create reaches it
// (positive control on the same path), B's fails with Docker's
// "not found" and adds no call.
func TestDockerTwoEnginesPluginDirs(t *testing.T) {
	a, b := NewNode(t, "pa"), NewNode(t, "pb")
	var da, db *Docker
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); da = StartDocker(t, a) }()
	go func() { defer wg.Done(); db = StartDocker(t, b) }()
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	probe := serveProbePlugin(t, filepath.Join(da.PluginDir(), "ofat-probe.sock"))

	da.Run(t, "network", "create", "-d", "ofat-probe", "probed")
	if got := probe.calls(); !strings.Contains(got, "/NetworkDriver.CreateNetwork") {
		t.Fatalf("engine A did not reach the probe plugin; calls: %s", got)
	}
	before := probe.calls()
	out, err := db.RunErr("network", "create", "-d", "ofat-probe", "probed")
	if err == nil || !strings.Contains(out, `plugin "ofat-probe" not found`) {
		t.Fatalf("engine B found A's plugin (err %v):\n%s", err, out)
	}
	if after := probe.calls(); after != before {
		t.Fatalf("engine B called A's plugin: %s", strings.TrimPrefix(after, before))
	}
	if _, err := os.Stat("/run/docker/plugins/ofat-probe.sock"); !os.IsNotExist(err) {
		t.Fatalf("the probe socket shows in the host's /run/docker/plugins: %v", err)
	}
	// Both engines run containers at the same time.
	wg.Add(2)
	for _, d := range []*Docker{da, db} {
		go func() {
			defer wg.Done()
			if out, err := d.RunErr("run", "--rm", "--network", "none", d.Image(t), "true"); err != nil {
				t.Errorf("%s: %v\n%s", d, err, out)
			}
		}()
	}
	wg.Wait()
}

// TestDockerRestartAndCleanup: the engine comes back after Kill and after
// Restart with its image, and destroying it leaves no process of its mount
// namespace or cgroups, no cgroup directory and no files.
func TestDockerRestartAndCleanup(t *testing.T) {
	n := NewNode(t, "dr")
	var mntNS, cgroup, dir string
	t.Run("engine", func(t *testing.T) {
		d := StartDocker(t, n)
		mntNS, cgroup, dir = d.mntNS, d.cgroup, d.Dir
		img := d.Image(t)
		d.Run(t, "run", "-d", "--name", "sleeper", "--network", "none", img, "sleep", "600")
		d.Kill(t)
		d.Start(t)
		d.Restart(t)
		if out := d.Run(t, "run", "--rm", "--network", "none", img, "echo", "back"); strings.TrimSpace(out) != "back" {
			t.Fatalf("after restart: %q", out)
		}
		if len(pidsInMountNS(mntNS)) < 2 { // holder, dockerd, containerd
			t.Fatalf("no engine processes found in %s", mntNS)
		}
	})
	if pids := pidsInMountNS(mntNS); len(pids) > 0 {
		t.Errorf("processes left in the engine's mount namespace: %v", pids)
	}
	if left, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", cgroup)); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("engine directory left: %v", err)
	}
}

// probePlugin is the smallest remote network driver: it records the calls
// it gets and says yes to all of them.
type probePlugin struct {
	mu  sync.Mutex
	log []string
}

func (p *probePlugin) calls() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.log, " ")
}

func serveProbePlugin(t *testing.T, sock string) *probePlugin {
	t.Helper()
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	p := &probePlugin{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		p.mu.Lock()
		p.log = append(p.log, r.URL.Path)
		p.mu.Unlock()
		resp := map[string]any{}
		switch r.URL.Path {
		case "/Plugin.Activate":
			resp["Implements"] = []string{"NetworkDriver"}
		case "/NetworkDriver.GetCapabilities":
			resp["Scope"] = "local"
		}
		_ = json.NewEncoder(w).Encode(resp)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close(); _ = os.Remove(sock) })
	return p
}
