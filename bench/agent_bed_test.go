package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/agent"
	"github.com/ofctl-agent/ofctl-agent/pkg/arp"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// The agent benchmarks run the real agent (pkg/agent, in-process) against a
// test-bed node. Endpoints are OVSDB Interface rows carrying the
// ofctl-agent.network and ofctl-agent.ip external_ids, fed straight into
// OVSDB with ovsdb-client (see endpoints.go for why, and which port types).
const (
	agentBridge   = "br-int"
	agentNode     = "self"
	agentTunnel   = testbed.AgentTunnelPort
	agentTunnelOF = testbed.AgentTunnelOFPort
	benchNet      = "blue"
	benchVNI      = 100
)

// One network and this host alone: no remote-host flows, so the bridge holds
// the fixed flows, the network's flow and five flows per endpoint. No
// gateway: the agent binary (AgentDaemon) would add one, and its port and
// flows, on a bridge the in-process agent programmed without.
const agentCluster = `networks:
  - name: blue
    vni: 100
    subnet: 10.100.0.0/16
    gateway: false
hosts:
  - name: self
    tunnel_ip: 192.0.2.1
    ranges: { blue: 10.100.0.0/16 }
`

var benchSubnet = netip.MustParsePrefix("10.100.0.0/16")

// portName is the OVS port of endpoint i.
func portName(i int) string { return fmt.Sprintf("d%d", i) }

// endpointIP is endpoint i's address; gen 1 is the address it is moved to
// (the restart benchmark changes IPs while the agent is down).
func endpointIP(i, gen int) netip.Addr {
	n := 256 + i + gen*30_000
	return netip.AddrFrom4([4]byte{10, 100, byte(n >> 8), byte(n)})
}

// benchEndpoint is endpoint i as the pipeline sees it (ofport aside).
func benchEndpoint(i, gen int) (pipeline.Network, pipeline.Endpoint) {
	ip := endpointIP(i, gen)
	return pipeline.Network{Name: benchNet, VNI: benchVNI, Subnet: benchSubnet},
		pipeline.Endpoint{Network: benchNet, Port: portName(i), OFPort: 1, IP: ip, MAC: arp.DerivedMAC(ip)}
}

// flowsPerEndpoint is the number of flows of one endpoint, per pkg/pipeline.
func flowsPerEndpoint() int {
	n, ep := benchEndpoint(0, 0)
	return len(pipeline.EndpointFlows(n, ep))
}

// pipelineFlows is how many flows the agent installs for n endpoints, per
// pkg/pipeline: the fixed flows (with the tunnel port), the network's and
// the endpoints'.
func pipelineFlows(n int) int {
	net, _ := benchEndpoint(0, 0)
	return len(pipeline.FixedFlows(agentTunnelOF)) + len(pipeline.NetworkFlows(net)) + n*flowsPerEndpoint()
}

// agentBed is a test-bed node with a cluster file for the agent.
type agentBed struct {
	node    *testbed.Node
	cluster string
	// fullCheckEvery, when set, is the agent's full comparison interval
	// while OVS's flow monitor works (default 5 min): the restart benchmark
	// wants one to run to show it sends nothing.
	fullCheckEvery time.Duration
}

func newAgentBed(b *testing.B, name string) *agentBed {
	b.Helper()
	node := testbed.NewNode(b, name)
	file := filepath.Join(b.TempDir(), "cluster.yaml")
	if err := os.WriteFile(file, []byte(agentCluster), 0o644); err != nil {
		b.Fatal(err)
	}
	return &agentBed{node: node, cluster: file}
}

// runningAgent is one agent.Run in a goroutine.
type runningAgent struct {
	agent   *agent.Agent
	log     *logRecorder
	started time.Time // just before agent.New
	cancel  context.CancelFunc
	done    chan struct{}
	ready   chan struct{}
	readyAt time.Time // written before ready is closed
}

// start builds and runs an agent with the daemon's default intervals;
// onApply may be nil. It does not wait for anything.
func (e *agentBed) start(b *testing.B, onApply func(agent.Applied)) *runningAgent {
	b.Helper()
	rec := &logRecorder{}
	log := slog.New(rec)
	if path := os.Getenv("OFCTL_BENCH_AGENT_LOG"); path != "" {
		// Keep the agent's whole log (debug level) for a closer look.
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { f.Close() })
		rec.tee = slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug})
	}
	src, err := cluster.NewStatic(cluster.StaticConfig{Path: e.cluster, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	r := &runningAgent{log: rec, done: make(chan struct{}), ready: make(chan struct{}), started: time.Now()}
	var once sync.Once
	a, err := agent.New(agent.Config{NodeName: agentNode, OVSDB: e.node.DBAddr(), OpenFlow: e.node.MgmtAddr(agentBridge),
		Bridge:     ovsdb.BridgeConfig{Name: agentBridge, DatapathType: "netdev"},
		TunnelPort: agentTunnel, TunnelOFPort: agentTunnelOF, Cluster: src, Logger: log, OnApply: onApply,
		VerifyEvery: time.Second, EchoInterval: 2 * time.Second, DeadInterval: 6 * time.Second, // pkg/config defaults
		// OFCTL_BENCH_NO_FLOW_MONITOR=1: the periodic full comparison alone (flow-monitor: false).
		NoFlowMonitor: os.Getenv("OFCTL_BENCH_NO_FLOW_MONITOR") != "", MonitoredVerifyEvery: e.fullCheckEvery,
		OnReady: func() { once.Do(func() { r.readyAt = time.Now(); close(r.ready) }) }})
	if err != nil {
		b.Fatal(err)
	}
	r.agent = a
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { defer close(r.done); _ = a.Run(ctx) }()
	b.Cleanup(r.stop)
	return r
}

// waitReady waits for the first complete Sync and returns the time from
// start to it.
func (r *runningAgent) waitReady(b *testing.B, timeout time.Duration) time.Duration {
	b.Helper()
	select {
	case <-r.ready:
		return r.readyAt.Sub(r.started)
	case <-time.After(timeout):
		b.Fatalf("agent not ready after %v: %+v", timeout, r.agent.Status())
		return 0
	}
}

// stop cancels the agent and waits for Run to return (flows stay in OVS).
// It may be called more than once.
func (r *runningAgent) stop() {
	r.cancel()
	<-r.done
}

// waitFlows polls ovs-ofctl dump-aggregate until br-int holds want flows
// and returns how long that took.
func (e *agentBed) waitFlows(b *testing.B, want int, timeout time.Duration) time.Duration {
	b.Helper()
	start := time.Now()
	got := -1
	for time.Since(start) < timeout {
		if got = e.flowCount(); got == want {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("after %v br-int holds %d flows, want %d", timeout, got, want)
	return 0
}

// flowCount is br-int's flow count per ovs-ofctl, -1 while it cannot answer
// (ovs-vswitchd restarting).
func (e *agentBed) flowCount() int {
	n, err := e.node.FlowCount(agentBridge)
	if err != nil {
		return -1
	}
	return n
}

// cookieFlows returns the flows of this cookie's object (role bits aside),
// as ovs-ofctl prints them, and their number.
func (e *agentBed) cookieFlows(b *testing.B, cookie uint64) (string, int) {
	b.Helper()
	out := e.node.Ofctl(b, "dump-flows", agentBridge, fmt.Sprintf("cookie=%#x/%#x", cookie, pipeline.ObjectMask))
	return out, strings.Count(out, "cookie=")
}

// programmed adds n endpoints and returns an agent that has installed all
// their flows. A first agent creates br-int and is stopped; the endpoints are
// added while no agent runs (an agent watching 10,000 ports arrive spends
// about a minute catching up, see README), then a new agent starts.
func (e *agentBed) programmed(b *testing.B, n int, onApply func(agent.Applied)) *runningAgent {
	b.Helper()
	first := e.start(b, nil)
	first.waitReady(b, 30*time.Second)
	first.stop()
	e.addEndpoints(b, 0, n)
	r := e.start(b, onApply)
	r.waitReady(b, 2*time.Minute)
	e.waitFlows(b, pipelineFlows(n), time.Minute)
	return r
}

// logRecorder is the agent's slog.Handler: it keeps the time and attributes
// of every Info-or-above record, so benchmarks can split a duration at the
// agent's own milestones ("model loaded", "pipeline synchronised").
type logRecorder struct {
	mu   sync.Mutex
	recs []logRecord
	tee  slog.Handler // optional: every record also goes here
}

type logRecord struct {
	time  time.Time
	msg   string
	attrs map[string]slog.Value
}

func (l *logRecorder) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= slog.LevelInfo || l.tee != nil && l.tee.Enabled(ctx, lv)
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

func (l *logRecorder) Handle(ctx context.Context, r slog.Record) error {
	if l.tee != nil {
		_ = l.tee.Handle(ctx, r)
	}
	if r.Level < slog.LevelInfo {
		return nil
	}
	rec := logRecord{time: r.Time, msg: r.Message, attrs: map[string]slog.Value{}}
	r.Attrs(func(a slog.Attr) bool { rec.attrs[a.Key] = a.Value; return true })
	l.mu.Lock()
	l.recs = append(l.recs, rec)
	l.mu.Unlock()
	return nil
}

// first returns the first record with msg logged at or after t.
func (l *logRecorder) first(msg string, t time.Time) (logRecord, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs {
		if r.msg == msg && !r.time.Before(t) {
			return r, true
		}
	}
	return logRecord{}, false
}

// milestone is the first record msg at or after t, waited for up to 30s.
func (l *logRecorder) milestone(b *testing.B, msg string, t time.Time) logRecord {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if r, ok := l.first(msg, t); ok {
			return r
		}
		if time.Now().After(deadline) {
			b.Fatalf("agent did not log %q within 30s", msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// quantile is the q-quantile (nearest rank) of ds.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
