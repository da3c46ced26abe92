package e2e

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// startContainerd runs a private containerd (Debian's, as docker.io brings
// it; its own root, state and socket, the CRI plugin off) with the test
// image imported, and returns its socket.
func startContainerd(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("containerd"); err != nil {
		t.Fatalf("containerd: %v (scripts/setup-host.sh installs docker.io, which brings it)", err)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "containerd.sock")
	conf := fmt.Sprintf("version = 2\nroot = %q\nstate = %q\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = %q\n",
		filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock)
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("containerd", "--config", filepath.Join(dir, "config.toml"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// the container's task and shim first (a failed run leaves them),
		// then containerd; shims still serving this socket are ended by pid.
		for _, args := range [][]string{{"tasks", "kill", "-s", "KILL", ctrContainer}, {"tasks", "delete", "-f", ctrContainer},
			{"containers", "delete", ctrContainer}} {
			_ = exec.Command("ctr", append([]string{"--address", sock, "-n", "ofctl"}, args...)...).Run()
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		killServing(sock)
		_ = exec.Command("runc", "--root", "/run/containerd/runc/ofctl", "delete", "--force", ctrContainer).Run()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("containerd log:\n%s", tail(b, 3000))
		}
	})
	testbed.Eventually(t, 20*time.Second, func() bool {
		return exec.Command("ctr", "--address", sock, "version").Run() == nil
	}, "containerd never answered on %s", sock)
	img, err := testbed.BusyboxOCIArchive()
	if err != nil {
		t.Fatal(err)
	}
	imp := exec.Command("ctr", "--address", sock, "-n", "ofctl", "images", "import", "--snapshotter", "native", "-")
	imp.Stdin = bytes.NewReader(img)
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("ctr images import: %v %s", err, out)
	}
	return sock
}

// ctrContainer is the containerd container's id: unique per test process,
// since runc keeps its state under /run/containerd/runc/<namespace> for
// every containerd on the machine.
var ctrContainer = fmt.Sprintf("ofctl-cni-%d", os.Getpid())

// killServing kills (by pid) the processes whose command line names sock:
// containerd shims this test's containerd started.
func killServing(sock string) {
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if cmdline, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline")); err == nil && bytes.Contains(cmdline, []byte(sock)) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// cniDirs makes sure /etc/cni/net.d and /opt/cni/bin exist (ctr reads only
// these) and removes at cleanup the ones it made; the test bind-mounts its
// own directories over them in a private mount namespace, so the host's
// stay empty.
func cniDirs(t *testing.T) {
	for _, d := range []string{"/etc/cni/net.d", "/opt/cni/bin"} {
		if _, err := os.Stat(d); err == nil {
			continue
		}
		parent := filepath.Dir(d)
		_, perr := os.Stat(parent)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = os.Remove(d)
			if perr != nil {
				_ = os.Remove(parent)
			}
		})
	}
}

// TestCNIContainerd: containerd starts a container with `ctr run --cni`
// in host A's namespace using ofctl-cni's conflist (the plugin in
// /opt/cni/bin, the conflist in /etc/cni/net.d, as a runtime finds them);
// the container pings a container on host B (attached with cnitool); when
// it exits, ctr's DEL removes its port.
func TestCNIContainerd(t *testing.T) {
	testbed.Require(t)
	bin := cniBin(t)
	file := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(file, []byte(agCluster), 0o644); err != nil {
		t.Fatal(err)
	}
	a, b := testbed.NewNode(t, "ha"), testbed.NewNode(t, "hb")
	testbed.Underlay(t, a, b, netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("192.0.2.2/24"))
	agStart(t, a, "ha", "192.0.2.1", file)
	agStart(t, b, "hb", "192.0.2.2", file)
	ha, hb := newCNIHost(t, a, bin), newCNIHost(t, b, bin)
	// containerd 1.6 (Debian's) reads results up to spec 1.0.0.
	logFile := filepath.Join(t.TempDir(), "ofctl-cni.log")
	ha.writeConfVersion(t, "1.0.0", "blue", `{"type":"ofctl-cni","ovsdb":%q,"openflow":%q,"agentSocket":%q,"installTimeout":"60s","logFile":%q}`,
		a.DBAddr(), a.MgmtAddr("br-int"), testbed.AgentSocket(a), logFile)
	cb := atNewNS(t, "ctrb")
	rb := parseCNI(t, hb.mustTool(t, "add", "blue", atNSPath(cb)))
	ipb := strings.Split(rb.IPs[0].Address, "/")[0]
	sock := startContainerd(t)
	cniDirs(t)
	script := filepath.Join(t.TempDir(), "run.sh")
	body := fmt.Sprintf(`set -e
mount --bind %s /etc/cni/net.d
mount --bind %s /opt/cni/bin
exec ctr --address %s -n ofctl run --cni --rm --snapshotter native %s %s sh -c 'ip -4 -o addr show dev eth0; ping -c 5 -W 2 %s'
`, ha.conf, bin, sock, testbed.OCIImageName, ctrContainer, ipb)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ip", "netns", "exec", string(a.NS), "sh", script).CombinedOutput()
	t.Logf("ctr run --cni:\n%s", out)
	if err != nil {
		t.Fatalf("ctr run --cni: %v", err)
	}
	if !strings.Contains(string(out), "inet 10.100.1.") || !strings.Contains(string(out), "bytes from "+ipb) {
		t.Fatalf("the containerd container has no address of ha's range or got no reply from %s", ipb)
	}
	if p := cniPort(t, a, "ofctl-"+ctrContainer); p != "" {
		t.Fatalf("port %s left", p)
	}
	// What containerd ran, in the plugin's log file (containerd keeps the
	// plugin's stderr only after a success).
	logged, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatalf("the plugin's log file: %v", err)
	}
	for _, want := range []string{"msg=added cmd=ADD", "msg=deleted cmd=DEL", "container=ofctl-" + ctrContainer} {
		if !strings.Contains(string(logged), want) {
			t.Errorf("the plugin's log file lacks %q:\n%s", want, logged)
		}
	}
	if out := a.Vsctl(t, "--bare", "--columns=name", "find", "Interface", "external_ids:ofctl-agent.owner=cni"); strings.TrimSpace(out) != "" {
		t.Fatalf("ports of ofctl-cni left on ha after the container exited: %s", out)
	}
}
