package bench

import (
	"bufio"
	"cmp"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// daemon is one real ofctl-agent binary (`ofctl-agent run`) started by a
// benchmark, observed from outside: /readyz, /metrics, /proc and its log.
type daemon struct {
	cmd     *exec.Cmd
	listen  string    // HTTP address (/metrics, /readyz, /debug/pprof)
	logPath string    // its stdout and stderr
	started time.Time // just before the process was started
	done    chan struct{}
	once    sync.Once
}

// buildAgent builds cmd/ofctl-agent into a temporary directory.
func buildAgent(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "ofctl-agent")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/ofctl-agent/ofctl-agent/cmd/ofctl-agent").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v: %s", err, out)
	}
	return bin
}

// daemonArgs are the `run` flags that attach the agent, named self, to the
// test-bed node (netdev datapath, GRE port gre0 at ofport 100).
func daemonArgs(node *testbed.Node, self string) []string {
	return []string{"run", "--node-name", self, "--ovsdb", node.DBAddr(), "--ovs-rundir", node.Dir,
		"--datapath-type", "netdev", "--tunnel-ip", "192.0.2.1", "--tunnel-port", agentTunnel,
		"--tunnel-ofport", strconv.Itoa(agentTunnelOF)}
}

// startDaemon runs bin with args plus a free --listen address and, unless
// args set one, --log-level info (OFCTL_BENCH_DAEMON_LOG_LEVEL overrides it), its output
// written to logPath (truncated). It does not wait for anything; the
// process is stopped at cleanup, and its log printed if the benchmark
// failed.
func startDaemon(b *testing.B, bin, logPath string, args ...string) *daemon {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	d := &daemon{listen: ln.Addr().String(), logPath: logPath, done: make(chan struct{})}
	ln.Close()
	args = append(args, "--listen", d.listen)
	if !slices.Contains(args, "--log-level") {
		args = append(args, "--log-level", cmp.Or(os.Getenv("OFCTL_BENCH_DAEMON_LOG_LEVEL"), "info"))
	}
	d.cmd = exec.Command(bin, args...)
	log, err := os.Create(logPath)
	if err != nil {
		b.Fatal(err)
	}
	d.cmd.Stdout, d.cmd.Stderr = log, log
	d.started = time.Now()
	if err := d.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { _ = d.cmd.Wait(); log.Close(); close(d.done) }()
	b.Cleanup(func() { // after stop
		if b.Failed() {
			data, _ := os.ReadFile(logPath)
			b.Logf("agent log %s (tail):\n%s", logPath, data[max(0, len(data)-6000):])
		}
	})
	b.Cleanup(d.stop)
	return d
}

// stop sends SIGTERM and waits, SIGKILL after 10 s. It may be called more
// than once.
func (d *daemon) stop() {
	d.once.Do(func() {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.done
		}
	})
}

// terminate sends SIGTERM and requires the process to exit 0 within 10 s;
// it returns how long the exit took.
func (d *daemon) terminate(b *testing.B) time.Duration {
	b.Helper()
	start := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		b.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		b.Fatal("agent still running 10 s after SIGTERM")
	}
	took := time.Since(start)
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		b.Fatalf("agent exited %d after SIGTERM, want 0", code)
	}
	return took
}

// kill sends SIGKILL and waits for the process to be gone.
func (d *daemon) kill(b *testing.B) {
	b.Helper()
	if err := d.cmd.Process.Kill(); err != nil {
		b.Fatalf("SIGKILL: %v", err)
	}
	<-d.done
}

// waitReady polls /readyz every 5 ms and returns the time from process
// start to its first 200.
func (d *daemon) waitReady(b *testing.B, timeout time.Duration) time.Duration {
	b.Helper()
	client := &http.Client{Timeout: time.Second}
	for time.Since(d.started) < timeout {
		select {
		case <-d.done:
			b.Fatalf("agent exited before ready: %v (log %s)", d.cmd.ProcessState, d.logPath)
		default:
		}
		if resp, err := client.Get("http://" + d.listen + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(d.started)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Fatalf("agent not ready %v after start (log %s)", timeout, d.logPath)
	return 0
}

// metric returns one unlabelled sample of the agent's /metrics.
func (d *daemon) metric(b *testing.B, name string) float64 {
	b.Helper()
	resp, err := http.Get("http://" + d.listen + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 1<<20), 1<<20)
	for s.Scan() {
		if f := strings.Fields(s.Text()); len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				b.Fatal(err)
			}
			return v
		}
	}
	b.Fatalf("no %s in /metrics", name)
	return 0
}

// memory forces a GC in the agent (pprof heap ?gc=1) and returns its RSS
// and live heap in MiB.
func (d *daemon) memory(b *testing.B) (rss, heap float64) {
	b.Helper()
	resp, err := http.Get("http://" + d.listen + "/debug/pprof/heap?gc=1")
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	return d.metric(b, "process_resident_memory_bytes") / (1 << 20), d.metric(b, "go_memstats_heap_alloc_bytes") / (1 << 20)
}

// peakRSS is the process's peak resident set (VmHWM) in MiB.
func (d *daemon) peakRSS(b *testing.B) float64 {
	b.Helper()
	return procStatusMiB(b, strconv.Itoa(d.cmd.Process.Pid), "VmHWM")
}

// logLine returns the attributes (time, level, msg and the rest, values
// unquoted) of the first line of the agent's text log whose msg is msg.
func (d *daemon) logLine(b *testing.B, msg string) map[string]string {
	b.Helper()
	data, err := os.ReadFile(d.logPath)
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if attrs := parseLogLine(line); attrs["msg"] == msg {
			return attrs
		}
	}
	b.Fatalf("no %q line in the agent's log %s", msg, d.logPath)
	return nil
}

// parseLogLine splits one slog text line into its key=value pairs; quoted
// values are unquoted. A malformed rest of the line is dropped.
func parseLogLine(line string) map[string]string {
	attrs := map[string]string{}
	for line = strings.TrimSpace(line); line != ""; line = strings.TrimLeft(line, " ") {
		key, rest, ok := strings.Cut(line, "=")
		if !ok || strings.Contains(key, " ") {
			return attrs
		}
		value, end := rest, len(rest)
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return attrs
			}
			value, _ = strconv.Unquote(q)
			end = len(q)
		} else if i := strings.IndexByte(rest, ' '); i >= 0 {
			value, end = rest[:i], i
		}
		attrs[key] = value
		line = rest[end:]
	}
	return attrs
}

// logTime is the time attribute of a log line (millisecond precision).
func logTime(b *testing.B, attrs map[string]string) time.Time {
	b.Helper()
	t, err := time.Parse(time.RFC3339Nano, attrs["time"])
	if err != nil {
		b.Fatalf("log line %v: %v", attrs, err)
	}
	return t
}

// logDuration parses the duration attribute key of a log line.
func logDuration(b *testing.B, attrs map[string]string, key string) time.Duration {
	b.Helper()
	v, err := time.ParseDuration(attrs[key])
	if err != nil {
		b.Fatalf("log line %v: %s: %v", attrs, key, err)
	}
	return v
}
