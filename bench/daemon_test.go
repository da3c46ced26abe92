package bench

import (
	"cmp"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// daemon is one real ofctl-agent binary (`ofctl-agent run`) started by a
// benchmark: testbed.Agent (its /readyz, /metrics and log), with what
// benchmarks read besides (memory, profiles, log attributes).
type daemon struct{ *testbed.Agent }

// daemonArgs are the `run` flags that attach the agent, named self, to the
// test-bed node (netdev datapath, GRE port agentTunnel at agentTunnelOF).
func daemonArgs(node *testbed.Node, self string) []string {
	return testbed.AgentArgs(node, self, "192.0.2.1")
}

// startDaemon runs the agent with args, --pprof (memory and profiles are
// read from it) and, unless args set one, --log-level info
// (OFCTL_BENCH_DAEMON_LOG_LEVEL overrides it), its output written to
// logPath. It does not wait for anything; the process is stopped at
// cleanup, and its log printed if the benchmark failed.
func startDaemon(b *testing.B, logPath string, args ...string) *daemon {
	b.Helper()
	args = append(args, "--pprof")
	if !slices.Contains(args, "--log-level") {
		args = append(args, "--log-level", cmp.Or(os.Getenv("OFCTL_BENCH_DAEMON_LOG_LEVEL"), "info"))
	}
	return &daemon{testbed.StartAgent(b, logPath, args...)}
}

// memory forces a GC in the agent (pprof heap ?gc=1) and returns its RSS
// and live heap in MiB.
func (d *daemon) memory(b *testing.B) (rss, heap float64) {
	b.Helper()
	if code, body, err := d.Get("/debug/pprof/heap?gc=1"); err != nil || code != http.StatusOK {
		b.Fatalf("/debug/pprof/heap: %d %v %.200s", code, err, body)
	}
	return d.Metric(b, "process_resident_memory_bytes") / (1 << 20), d.Metric(b, "go_memstats_heap_alloc_bytes") / (1 << 20)
}

// peakRSS is the process's peak resident set (VmHWM) in MiB.
func (d *daemon) peakRSS(b *testing.B) float64 {
	b.Helper()
	return procStatusMiB(b, strconv.Itoa(d.Pid()), "VmHWM")
}

// logLine returns the attributes (time, level, msg and the rest, values
// unquoted) of the first line of the agent's text log whose msg is msg.
func (d *daemon) logLine(b *testing.B, msg string) map[string]string {
	b.Helper()
	return d.firstLogLine(b, msg)
}

// firstLogLine is logLine for the first line whose msg is one of msgs.
func (d *daemon) firstLogLine(b *testing.B, msgs ...string) map[string]string {
	b.Helper()
	data, err := os.ReadFile(d.LogPath)
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if attrs := parseLogLine(line); slices.Contains(msgs, attrs["msg"]) {
			return attrs
		}
	}
	b.Fatalf("no %q line in the agent's log %s", msgs, d.LogPath)
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
