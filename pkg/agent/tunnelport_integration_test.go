package agent

import (
	"context"
	"log/slog"
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

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/pkg/reconcile"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// heldSource is a cluster.Source whose first view comes only when release
// is closed (a large etcd list still loading).
type heldSource struct {
	cluster.Source
	release chan struct{}
	updates chan cluster.View
}

func (s *heldSource) Current() (cluster.View, bool) { return cluster.View{}, false }

func (s *heldSource) Updates() <-chan cluster.View { return s.updates }

func (s *heldSource) Run(ctx context.Context) error {
	go func() {
		select {
		case <-s.release:
		case <-ctx.Done():
			return
		}
		for ctx.Err() == nil { // the static source publishes its first view at Run
			if v, ok := s.Source.Current(); ok {
				s.updates <- v
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return s.Source.Run(ctx)
}

// TestFirstSyncHasTunnelFlows: on a fresh bridge the tunnel port gets its
// ofport while the cluster view loads; the agent's first Sync installs the
// whole pipeline, remote hosts included, in one bundle (not the flows
// without the port, then the rest once the port's event is handled).
func TestFirstSyncHasTunnelFlows(t *testing.T) {
	node := testbed.NewNode(t, "tp")
	var mu sync.Mutex
	var syncs []reconcile.SyncResult
	release := make(chan struct{})
	// ovs-vswitchd is paused while the agent adds the port and subscribes
	// to the interfaces: the port gets its number after that, as on a busy
	// host; then the view comes.
	pid := vswitchdPid(t, node)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	vsctl := func(args ...string) string {
		out, _ := exec.Command("ovs-vsctl", append([]string{"--timeout=5", "--no-wait", "--db=" + node.DBAddr(), "--if-exists"}, args...)...).Output()
		return strings.TrimSpace(string(out))
	}
	go func() {
		defer close(release)
		deadline := time.Now().Add(20 * time.Second)
		for vsctl("get", "interface", "gre0", "type") != "gre" && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond) // the agent subscribes right after adding the port
		resume()
		for vsctl("get", "interface", "gre0", "ofport") != "100" && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}()
	msgs := &logMessages{}
	startAgent(t, node, "ha", func(c *Config) {
		c.Logger = slog.New(&recordingHandler{Handler: c.Logger.Handler(), into: msgs})
		c.Cluster = &heldSource{Source: c.Cluster, release: release, updates: make(chan cluster.View, 1)}
		c.OnSync = func(r reconcile.SyncResult, err error) {
			if err == nil {
				mu.Lock()
				syncs = append(syncs, r)
				mu.Unlock()
			}
		}
	})
	if got := msgs.order("tunnel port", "model loaded"); got != "tunnel port,model loaded" {
		t.Errorf("log order %q: the model was built before the tunnel port was known (built twice)", got)
	}
	// 8 fixed + 2 networks + 1 remote host with 2 ranges (5), no endpoint.
	want := len(pipeline.FixedFlows(100)) + 2 + 5
	mu.Lock()
	first := syncs[0]
	mu.Unlock()
	if first.Added != want {
		t.Errorf("first Sync added %d flows, want the whole pipeline's %d", first.Added, want)
	}
	testbed.Eventually(t, 5*time.Second, func() bool { return agentFlows(t, node, "") == want },
		"want %d agent flows, OVS has:\n%s", want, node.Ofctl(t, "dump-flows", "br-int"))
}

func vswitchdPid(t *testing.T, node *testbed.Node) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(node.Dir, "vswitchd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// logMessages are the messages logged, in order.
type logMessages struct {
	mu   sync.Mutex
	msgs []string
}

// order returns which of msgs were logged, in the order of their first
// line, joined by commas.
func (l *logMessages) order(msgs ...string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, m := range l.msgs {
		if slices.Contains(msgs, m) && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return strings.Join(out, ",")
}

// recordingHandler passes records on and keeps their messages.
type recordingHandler struct {
	slog.Handler
	into *logMessages
}

func (h *recordingHandler) Handle(ctx context.Context, r slog.Record) error {
	h.into.mu.Lock()
	h.into.msgs = append(h.into.msgs, r.Message)
	h.into.mu.Unlock()
	return h.Handler.Handle(ctx, r)
}

func (h *recordingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &recordingHandler{Handler: h.Handler.WithAttrs(as), into: h.into}
}

func (h *recordingHandler) WithGroup(name string) slog.Handler {
	return &recordingHandler{Handler: h.Handler.WithGroup(name), into: h.into}
}
