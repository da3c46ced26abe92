package testbed

import (
	"cmp"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var agentBuild struct {
	once sync.Once
	path string
	err  error
}

// AgentBinary builds cmd/ofctl-agent once per test process and returns its
// path.
func AgentBinary(t testing.TB) string {
	t.Helper()
	agentBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", Prefix+"bin-")
		if err != nil {
			agentBuild.err = err
			return
		}
		agentBuild.path = filepath.Join(dir, "ofctl-agent")
		out, err := exec.Command("go", "build", "-o", agentBuild.path, "github.com/ofctl-agent/ofctl-agent/cmd/ofctl-agent").CombinedOutput()
		if err != nil {
			agentBuild.err = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if agentBuild.err != nil {
		t.Fatal(agentBuild.err)
	}
	return agentBuild.path
}

// The GRE port of agents started with AgentArgs.
const (
	AgentTunnelPort   = "gre0"
	AgentTunnelOFPort = 100
)

// AgentArgs are the `run` arguments that attach an agent named self to
// node: netdev datapath, GRE port AgentTunnelPort at AgentTunnelOFPort,
// tunnelIP as its underlay address, its local API on AgentSocket(node) (the
// machine's default path is left alone), the node's namespace as the host's
// stack (gateway ports, packet filter: never the test machine's own). Callers append the cluster source
// and the rest.
func AgentArgs(node *Node, self, tunnelIP string) []string {
	return []string{"run", "--node-name", self, "--ovsdb", node.DBAddr(), "--ovs-rundir", node.Dir,
		"--datapath-type", "netdev", "--tunnel-ip", tunnelIP, "--tunnel-port", AgentTunnelPort,
		"--tunnel-ofport", strconv.Itoa(AgentTunnelOFPort), "--api-socket", AgentSocket(node), "--netns-host", node.NS.Path()}
}

// AgentSocket is where the agent of node started with AgentArgs serves its
// local API (attach's --agent-socket).
func AgentSocket(node *Node) string { return filepath.Join(node.Dir, "agent.sock") }

// Agent is one `ofctl-agent run` process, observed from outside: its HTTP
// endpoints and its log.
type Agent struct {
	Args    []string  // as started (--listen included)
	Listen  string    // HTTP HOST:PORT
	LogPath string    // stdout and stderr, appended to across restarts
	Started time.Time // just before the last start
	// Scheme, User, Password and Client are how Get reaches the agent
	// (default http, no credentials, a 10 s client).
	Scheme, User, Password string
	Client                 *http.Client

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartAgent starts the ofctl-agent binary with args, plus --listen on a
// free port unless args has one and --log-level debug unless args has one,
// its output written to logPath (truncated; restarts append). It does not wait for anything (see
// WaitReady). At cleanup the process is killed and, if the test failed, the
// tail of its log printed.
func StartAgent(t testing.TB, logPath string, args ...string) *Agent {
	t.Helper()
	a := &Agent{LogPath: logPath, Args: slices.Clone(args)}
	if i := slices.Index(a.Args, "--listen"); i >= 0 && i+1 < len(a.Args) {
		a.Listen = a.Args[i+1]
	} else {
		a.Listen = FreePort(t)
		a.Args = append(a.Args, "--listen", a.Listen)
	}
	if !slices.Contains(a.Args, "--log-level") {
		a.Args = append(a.Args, "--log-level", "debug")
	}
	if err := os.WriteFile(logPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.Stop(syscall.SIGKILL)
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("agent log %s (tail):\n%s", logPath, b[max(0, len(b)-6000):])
		}
	})
	a.Start(t)
	return a
}

// Start starts the process (again) with Args.
func (a *Agent) Start(t testing.TB) {
	t.Helper()
	log, err := os.OpenFile(a.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(AgentBinary(t), a.Args...)
	cmd.Stdout, cmd.Stderr = log, log
	a.Started = time.Now()
	if err := cmd.Start(); err != nil {
		log.Close()
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); log.Close(); close(exited) }()
	a.mu.Lock()
	a.cmd, a.exited = cmd, exited
	a.mu.Unlock()
}

// Restart stops the process (SIGTERM) and starts it again with Args,
// waiting until it is ready.
func (a *Agent) Restart(t testing.TB) {
	t.Helper()
	a.Stop(syscall.SIGTERM)
	a.Start(t)
	a.WaitReady(t, 15*time.Second)
}

// Stop sends sig and waits for the process to exit (SIGKILL after 10 s).
// It does nothing when the process has already exited.
func (a *Agent) Stop(sig syscall.Signal) {
	a.mu.Lock()
	cmd, exited := a.cmd, a.exited
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Terminate sends SIGTERM and requires an exit with status 0 within 10 s;
// it returns how long the exit took.
func (a *Agent) Terminate(t testing.TB) time.Duration {
	t.Helper()
	a.mu.Lock()
	cmd, exited := a.cmd, a.exited
	a.mu.Unlock()
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("agent still running 10 s after SIGTERM")
	}
	took := time.Since(start)
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("agent exited %d after SIGTERM, want 0", code)
	}
	return took
}

// Pid is the process's id.
func (a *Agent) Pid() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cmd.Process.Pid
}

// Get requests path from the agent and returns the status and body.
func (a *Agent) Get(path string) (int, []byte, error) {
	client := a.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	req, err := http.NewRequest(http.MethodGet, cmp.Or(a.Scheme, "http")+"://"+a.Listen+path, nil)
	if err != nil {
		return 0, nil, err
	}
	if a.User != "" {
		req.SetBasicAuth(a.User, a.Password)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// Ready reports whether /readyz answers 200.
func (a *Agent) Ready() bool {
	code, _, err := a.Get("/readyz")
	return err == nil && code == http.StatusOK
}

// WaitReady polls /readyz every 5 ms until it answers 200 and returns the
// time since the process was started; it fails the test if the process
// exits or timeout passes first.
func (a *Agent) WaitReady(t testing.TB, timeout time.Duration) time.Duration {
	t.Helper()
	a.mu.Lock()
	exited := a.exited
	a.mu.Unlock()
	for time.Since(a.Started) < timeout {
		select {
		case <-exited:
			t.Fatalf("agent exited before it was ready (log %s)", a.LogPath)
		default:
		}
		if a.Ready() {
			return time.Since(a.Started)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("agent not ready %v after its start (log %s)", timeout, a.LogPath)
	return 0
}

// Metric returns one unlabelled sample of /metrics; it fails the test
// when /metrics does not answer or lacks the sample.
func (a *Agent) Metric(t testing.TB, name string) float64 {
	t.Helper()
	v, err := a.MetricErr(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// MetricErr is Metric returning the error instead (for polling).
func (a *Agent) MetricErr(name string) (float64, error) {
	code, body, err := a.Get("/metrics")
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("/metrics: %d %.200s", code, body)
	}
	return Sample(body, name)
}

// Sample returns one unlabelled sample of a /metrics answer.
func Sample(metrics []byte, name string) (float64, error) {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(metrics)
	if m == nil {
		return 0, fmt.Errorf("/metrics has no %s", name)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// LogLine is one line of the agent's text log.
type LogLine struct {
	At   time.Time
	Line string
}

// Attr returns the value of an unquoted key=value in the line ("" if
// absent).
func (l LogLine) Attr(key string) string {
	for _, f := range strings.Fields(l.Line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// Logged returns the first line of the log containing substr (and none of
// not) stamped at or after since, waiting up to 5 s for it.
func (a *Agent) Logged(t testing.TB, substr string, since time.Time, not ...string) LogLine {
	t.Helper()
	var found LogLine
	Eventually(t, 5*time.Second, func() bool {
		b, err := os.ReadFile(a.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.Contains(line, substr) || slices.ContainsFunc(not, func(s string) bool { return strings.Contains(line, s) }) {
				continue
			}
			l := LogLine{Line: line}
			if at, err := time.Parse(time.RFC3339Nano, l.Attr("time")); err == nil && !at.Before(since) {
				l.At = at
				found = l
				return true
			}
		}
		return false
	}, "agent never logged %s after %v", substr, since)
	return found
}

// FreePort returns a loopback TCP address free at the time of the call.
func FreePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
