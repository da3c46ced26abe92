package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/config"
	"github.com/ofctl-agent/ofctl-agent/pkg/metrics"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// The budgets health probes and scrapes must answer within, whatever the
// debug endpoints and Syncs are doing (README, "Operating it"): the
// default timeout of a Kubernetes probe, and a fifth of Prometheus's
// default scrape timeout. Measured, they answer in tens of milliseconds;
// the margin is for a machine loaded by the whole test suite.
const (
	probeBudget  = time.Second     // /healthz, /readyz
	scrapeBudget = 2 * time.Second // /metrics (OVS values from the cache)
)

// TestProbesDuringAHeldSync runs the daemon's agent and HTTP server (as
// `run` wires them) against real OVS, the agent's OpenFlow connection
// through a relay. The relay holds a Sync: it withholds OVS's reply to the
// Sync's dump, so the Sync holds the reconciler waiting for OVS.
// /debug/flows still answers (it reads OVS on a connection of its own).
// Then /debug/flows and 30 s profiles (pprof on) are requested beyond the
// debug limit (and beyond the 16 requests the server used to serve in
// all): /healthz and /readyz must answer 200 within probeBudget and
// /metrics 200 within scrapeBudget throughout; once released, the Sync
// completes (syncs_total grows): it was a Sync that was held.
func TestProbesDuringAHeldSync(t *testing.T) {
	node := testbed.NewNode(t, "probe")
	relay := startRelay(t, node.MgmtAddr("br-int"))
	cluster := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(cluster, []byte("networks:\n  - name: blue\n    vni: 100\n    subnet: 10.100.0.0/16\nhosts: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load([]string{"--node-name", "ha", "--ovsdb", node.DBAddr(), "--ovs-rundir", node.Dir,
		"--datapath-type", "netdev", "--tunnel-port", "gre0", "--tunnel-ofport", "100", "--cluster-file", cluster,
		"--listen", "127.0.0.1:0", "--pprof", "--flow-monitor=false", "--verify-interval", "100ms",
		"--echo-interval", "20s", "--dead-interval", "60s"})
	if err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(node.Dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if b, _ := os.ReadFile(logFile.Name()); t.Failed() {
			t.Logf("agent log (tail):\n%s", b[max(0, len(b)-8000):])
		}
	})
	agentCfg := cfg
	agentCfg.OpenFlow = relay.addr // the agent alone goes through the relay
	loop := metrics.NewLoopMetrics()
	ag, backend, err := newAgent(agentCfg, log, loop, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, closeHTTP, err := serveHTTP(ctx, cfg, ag, loop, log, nil, backend.collector)
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() { defer close(stopped); _ = ag.Run(ctx) }()
	t.Cleanup(func() { relay.Release(); cancel(); <-stopped; closeHTTP(); logFile.Close() })
	base := "http://" + srv.Addr()
	testbed.Eventually(t, 15*time.Second, func() bool { code, _, _ := probe(base + "/readyz"); return code == 200 },
		"agent never ready")
	if code, body, _ := probe(base + "/metrics"); code != 200 { // the OVS values are cached from now on
		t.Fatalf("first scrape: %d %.200s", code, body)
	}

	relay.HoldNextDump()
	select {
	case <-relay.Held():
	case <-time.After(10 * time.Second):
		t.Fatal("no Sync started a dump within 10 s")
	}
	// /debug/flows reads on a connection of its own: it answers while the
	// agent's connection waits for the withheld reply.
	if code, body, took := probe(base + "/debug/flows"); code != 200 || took > 5*time.Second ||
		!strings.Contains(body, "expected") {
		t.Fatalf("/debug/flows during a held Sync: %d after %v: %.300s", code, took, body)
	}
	debug := saturateDebug(t, base)
	worst := map[string]time.Duration{}
	syncs := -1.0 // ofctl_agent_syncs_total while the Sync is held
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		for path, budget := range map[string]time.Duration{"/healthz": probeBudget, "/readyz": probeBudget, "/metrics": scrapeBudget} {
			code, body, took := probe(base + path)
			worst[path] = max(worst[path], took)
			if code != 200 || took > budget {
				t.Fatalf("GET %s during a held Sync: %d after %v (budget %v): %.200s", path, code, took, budget, body)
			}
			if path != "/metrics" {
				continue
			}
			n, err := testbed.Sample([]byte(body), "ofctl_agent_syncs_total")
			if err != nil {
				t.Fatal(err)
			}
			if syncs < 0 {
				syncs = n
			} else if n != syncs {
				t.Fatalf("a Sync completed while one was held: syncs_total %v -> %v", syncs, n)
			}
		}
	}
	served, refused := debug()
	t.Logf("while a Sync was held: slowest /healthz %v, /readyz %v, /metrics %v; debug requests: %d served, %d refused (503)",
		worst["/healthz"], worst["/readyz"], worst["/metrics"], served, refused)
	if refused == 0 {
		t.Errorf("debug requests: %d served, none refused; want the debug limit saturated", served)
	}
	if !relay.Holding() {
		t.Fatal("the Sync was not held throughout")
	}
	relay.Release()
	agent := &testbed.Agent{Listen: srv.Addr()}
	testbed.Eventually(t, 10*time.Second, func() bool { return agent.Metric(t, "ofctl_agent_syncs_total") > syncs },
		"the held Sync never completed")
}

// saturateDebug requests /debug/flows from 6 clients in a loop and 30 s
// heap profiles from 16, more than the debug limit, until the test ends or the
// returned function is called; it returns how many were served (200:
// flow dumps, profiles last longer than the test) and refused (503).
func saturateDebug(t *testing.T, base string) func() (served, refused int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var ok, busy atomic.Int64
	get := func(path string) {
		defer wg.Done()
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				continue
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case 200:
				ok.Add(1)
			case 503:
				busy.Add(1)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for range 6 {
		wg.Add(1)
		go get("/debug/flows")
	}
	for range 16 {
		wg.Add(1)
		go get("/debug/pprof/heap?seconds=30") // a delta profile: not exclusive like CPU profiles
	}
	stop := func() (int64, int64) { cancel(); wg.Wait(); return ok.Load(), busy.Load() }
	t.Cleanup(func() { stop() })
	time.Sleep(500 * time.Millisecond) // the limit is full
	return stop
}

// probe GETs url and returns the status, the body and how long it took.
func probe(url string) (int, string, time.Duration) {
	start := time.Now()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		return 0, err.Error(), time.Since(start)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), time.Since(start)
}
