package e2e

import (
	"bufio"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// TestReadmeInstall runs the README's "Install on a real host" commands as
// written, under a temp dir standing in for / (only the paths change), then
// starts the agent the way the installed systemd unit does (its ExecStart
// with NOTIFY_SOCKET set, against a test-bed node) and checks what the README
// promises: READY=1 once the pipeline is in OVS, and SIGTERM leaving every
// flow in place. `systemctl` needs systemd as PID 1: instead the unit is
// checked with `systemd-analyze verify`.
func TestReadmeInstall(t *testing.T) {
	testbed.Require(t)
	testbed.RequireTools(t, "systemd-analyze", "install")
	repo, root := dmRepoRoot(t), t.TempDir()
	for _, cmd := range rmInstallCommands(t, repo) {
		if strings.HasPrefix(cmd, "systemctl ") {
			continue // below: systemd-analyze verify
		}
		cmd = rmRooted(cmd, root)
		if strings.HasPrefix(cmd, "cp ") { // the target directory exists on a real host
			_ = os.MkdirAll(filepath.Join(root, "etc/systemd/system"), 0o755)
		}
		if out, err := rmShell(repo, cmd); err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, out)
		}
	}
	unit := filepath.Join(root, "etc/systemd/system/ofctl-agent.service")
	execStart := rmRootUnit(t, unit, root)
	if out, err := exec.Command("systemd-analyze", "verify", unit).CombinedOutput(); err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}

	node := testbed.NewNode(t, "rm")
	listen := testbed.FreePort(t)
	rmEditConfig(t, filepath.Join(root, "etc/ofctl-agent/agent.yaml"), map[string]string{
		"ovsdb": node.DBAddr(), "ovs-rundir": node.Dir, "datapath-type": "netdev",
		"cluster-file": filepath.Join(root, "etc/ofctl-agent/cluster.yaml"), "listen": listen, "api-socket": testbed.AgentSocket(node)})
	notify := rmNotifySocket(t)
	cmd := exec.Command(execStart[0], execStart[1:]...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify.LocalAddr().String())
	log, _ := os.Create(filepath.Join(node.Dir, "agent.log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	rmWaitReady(t, notify, listen)

	flows := agFlowCount(t, node)
	if want := rmDesiredFlows(t, listen); flows != want || flows == 0 {
		t.Fatalf("ready with %d of the agent's flows in OVS, it wants %d", flows, want)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM) // the unit's KillSignal
	if err := cmd.Wait(); err != nil {
		t.Fatalf("agent after SIGTERM: %v", err)
	}
	if after := agFlowCount(t, node); after != flows {
		t.Fatalf("after the agent stopped OVS holds %d flows, before %d", after, flows)
	}
}

// rmInstallCommands reads the shell block of the README's install section.
func rmInstallCommands(t *testing.T, repo string) []string {
	t.Helper()
	cmds := rmCommands(t, repo, "## Install on a real host")
	if len(cmds) != 5 || !strings.HasPrefix(cmds[0], "go build ") {
		t.Fatalf("README install block changed: %q", cmds)
	}
	return cmds
}

// rmCommands reads the first shell block after heading in the README: its
// commands, comments and blank lines dropped.
func rmCommands(t *testing.T, repo, heading string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(b), heading)
	_, block, _ := strings.Cut(section, "```sh\n")
	block, _, _ = strings.Cut(block, "```")
	var cmds []string
	for _, l := range strings.Split(block, "\n") {
		if l, _, _ = strings.Cut(l, "#"); strings.TrimSpace(l) != "" {
			cmds = append(cmds, strings.TrimSpace(l))
		}
	}
	return cmds
}

var rmPathRE = regexp.MustCompile(`(^|\s|=)/(usr/local/bin|etc)/`)

// rmRooted moves the absolute paths of a command (or unit line) under root.
func rmRooted(s, root string) string {
	return rmPathRE.ReplaceAllString(s, "${1}"+root+"/${2}/")
}

// rmReadmeCommand returns the line of a README shell block that starts with
// prefix.
func rmReadmeCommand(t *testing.T, prefix string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dmRepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, block := range strings.Split(string(b), "```sh\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		for _, l := range strings.Split(block, "\n") {
			if strings.HasPrefix(l, prefix) {
				return strings.TrimSpace(l)
			}
		}
	}
	t.Fatalf("no command starting with %q in the README's shell blocks", prefix)
	return ""
}

// rmShellEnv runs cmd with sh, env added to the environment.
func rmShellEnv(cmd string, env ...string) ([]byte, error) {
	c := exec.Command("sh", "-c", cmd)
	c.Env = append(os.Environ(), env...)
	return c.CombinedOutput()
}

func rmShell(dir, cmd string) ([]byte, error) {
	c := exec.Command("sh", "-c", cmd)
	c.Dir = dir
	return c.CombinedOutput()
}

// rmRootUnit rewrites the unit's paths under root and returns its ExecStart.
func rmRootUnit(t *testing.T, unit, root string) []string {
	t.Helper()
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	var execStart []string
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "ExecStart=") {
			l = rmRooted(l, root)
			execStart = strings.Fields(strings.TrimPrefix(l, "ExecStart="))
		}
		lines = append(lines, l)
	}
	if len(execStart) < 2 || execStart[1] != "run" {
		t.Fatalf("unit without ExecStart=... run: %q", execStart)
	}
	if err := os.WriteFile(unit, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return execStart
}

// rmEditConfig sets keys of the installed agent.yaml, as the operator edits it.
func rmEditConfig(t *testing.T, path string, set map[string]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		k, _, ok := strings.Cut(l, ":")
		if v, found := set[k]; ok && found {
			l = k + ": " + v
			delete(set, k)
		}
		out = append(out, l)
	}
	f.Close()
	if len(set) > 0 {
		t.Fatalf("agent.example.yaml has no keys %v", set)
	}
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// rmNotifySocket listens where systemd would for sd_notify messages.
func rmNotifySocket(t *testing.T) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(t.TempDir(), "notify"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rmWaitReady waits for READY=1 and checks that /readyz agrees.
func rmWaitReady(t *testing.T, notify *net.UnixConn, listen string) {
	t.Helper()
	_ = notify.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 256)
	for {
		n, err := notify.Read(buf)
		if err != nil {
			t.Fatalf("no READY=1 from the agent: %v", err)
		}
		if strings.Contains(string(buf[:n]), "READY=1") {
			break
		}
	}
	resp, err := http.Get("http://" + listen + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("READY=1 sent, /readyz says %s", resp.Status)
	}
}

// rmDesiredFlows is the agent's ofctl_agent_desired_flows.
func rmDesiredFlows(t *testing.T, listen string) int {
	t.Helper()
	return int((&testbed.Agent{Listen: listen}).Metric(t, "ofctl_agent_desired_flows"))
}
