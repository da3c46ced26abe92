package bench

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
)

// sameRestarts is how many restarts with nothing changed AgentRestart
// measures (the median is reported).
const sameRestarts = 5

// benchMoved is how many endpoints change IP while the agent is down.
const benchMoved = 100

// restartResult is one agent start on an already programmed bridge.
type restartResult struct {
	ready    time.Duration // agent.New -> first Sync done
	load     time.Duration // agent.New -> "model loaded" (OVSDB read, model built)
	sync     time.Duration // the first Sync ("pipeline synchronised" took)
	flowMods uint64        // flow_mods sent by the first Sync
}

// BenchmarkAgentRestart stops the agent of a bridge with 10,000 programmed
// endpoints and starts a new one on the same OVS: once with nothing changed
// (it must send no flow_mod; sameRestarts times, each after the floor is
// measured, the medians reported), once after 100 endpoints changed IP while it
// was down (it must send exactly the flow_mods that differ).
func BenchmarkAgentRestart(b *testing.B) {
	for i := 0; i < b.N; i++ {
		e := newAgentBed(b, "brst")
		first := e.programmed(b, benchEndpoints, nil)
		first.stop()

		// Several restarts with nothing changed, each after its floor:
		// the medians count.
		var sames []restartResult
		var floors floorRun
		for range sameRestarts {
			f := e.measureRestartFloor(b, pipelineFlows(benchEndpoints))
			r := e.restart(b, 0)
			floors.add(f, r.ready)
			sames = append(sames, r)
		}
		slices.SortFunc(sames, func(x, y restartResult) int { return cmp.Compare(x.ready, y.ready) })
		same := sames[len(sames)/2]

		e.moveEndpoints(b, benchMoved)
		moved := e.restart(b, movedFlowMods(benchMoved))
		e.checkMoved(b, movedIndex(benchMoved-1))

		b.ReportMetric(same.ready.Seconds(), "same-ready-s")
		b.ReportMetric(sames[0].ready.Seconds(), "same-ready-min-s")
		b.ReportMetric(sames[len(sames)-1].ready.Seconds(), "same-ready-max-s")
		b.ReportMetric(same.load.Seconds(), "same-load-s")
		b.ReportMetric(same.sync.Seconds(), "same-sync-s")
		b.ReportMetric(float64(same.flowMods), "same-flow_mods")
		b.ReportMetric(moved.ready.Seconds(), "moved-ready-s")
		b.ReportMetric(moved.sync.Seconds(), "moved-sync-s")
		b.ReportMetric(float64(moved.flowMods), "moved-flow_mods")
		floors.report(b, "same")
		b.ReportMetric(0, "ns/op")
	}
}

// restart starts a new agent on the programmed bridge, checks it sent
// exactly wantMods flow_mods in its first Sync and none after (a drift
// check included), and stops it.
func (e *agentBed) restart(b *testing.B, wantMods uint64) restartResult {
	b.Helper()
	e.fullCheckEvery = time.Second
	defer func() { e.fullCheckEvery = 0 }()
	// The agent runs in the test process: start it with the harness's
	// garbage collected, as a new process would start with an empty heap.
	runtime.GC()
	stopProfile := cpuProfile(b, os.Getenv("OFCTL_BENCH_PROFILE_DIR"), fmt.Sprintf("restart-%d", wantMods))
	r := e.start(b, nil)
	var res restartResult
	res.ready = r.waitReady(b, 2*time.Minute)
	stopProfile()
	res.flowMods = r.agent.Status().Reconcile.FlowMods
	res.load = r.log.milestone(b, "model loaded", r.started).time.Sub(r.started)
	if took, ok := r.log.milestone(b, "pipeline synchronised", r.started).attrs["took"]; ok {
		res.sync = took.Duration()
	}
	if res.flowMods != wantMods {
		b.Fatalf("first Sync sent %d flow_mods, want %d", res.flowMods, wantMods)
	}
	e.waitFlows(b, pipelineFlows(benchEndpoints), 10*time.Second)
	syncs := r.agent.Status().Reconcile.Syncs
	deadline := time.Now().Add(10 * time.Second)
	for r.agent.Status().Reconcile.Syncs == syncs && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // wait for one drift check
	}
	if st := r.agent.Status(); st.Reconcile.Syncs == syncs || st.Reconcile.FlowMods != wantMods {
		b.Fatalf("after a drift check: %d syncs, %d flow_mods (want %d)", st.Reconcile.Syncs-syncs, st.Reconcile.FlowMods, wantMods)
	}
	r.stop()
	return res
}

// cpuProfile starts a CPU profile of the test process into dir/name.pprof
// (nothing if dir is ""); the returned function stops it.
func cpuProfile(b *testing.B, dir, name string) func() {
	b.Helper()
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, name+".pprof"))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// checkMoved asserts that OVS holds endpoint i's flows for its new address
// only (ovs-ofctl, by the endpoint's cookie).
func (e *agentBed) checkMoved(b *testing.B, i int) {
	b.Helper()
	_, ep := benchEndpoint(i, 1)
	out, n := e.cookieFlows(b, ep.Cookie())
	newIP, oldIP := endpointIP(i, 1).String(), endpointIP(i, 0).String()
	if n != flowsPerEndpoint() || !hasAddr(out, newIP) || hasAddr(out, oldIP) {
		b.Fatalf("moved endpoint %d: want %d flows for %s and none for %s, OVS has:\n%s", i, flowsPerEndpoint(), newIP, oldIP, out)
	}
}

// hasAddr reports whether text mentions the IPv4 address ip as a whole.
func hasAddr(text, ip string) bool {
	return regexp.MustCompile(`(^|[^0-9.])` + regexp.QuoteMeta(ip) + `([^0-9]|$)`).MatchString(text)
}

// moveEndpoints gives n endpoints spread over the range a new IP (gen 1),
// in one ovs-vsctl invocation, as an operator would.
func (e *agentBed) moveEndpoints(b *testing.B, n int) {
	b.Helper()
	var args []string
	for k := 0; k < n; k++ {
		i := movedIndex(k)
		args = append(args, "--", "set", "interface", portName(i),
			fmt.Sprintf("external_ids:%s=%s", endpoint.KeyIP, endpointIP(i, 1)))
	}
	e.node.Vsctl(b, args[1:]...)
}

func movedIndex(k int) int { return k * (benchEndpoints / benchMoved) }

// movedFlowMods is what moving n endpoints must cost, per pkg/pipeline: a
// delete for each flow key that goes away, an add for each new or changed
// flow.
func movedFlowMods(n int) uint64 {
	net, old := benchEndpoint(0, 0)
	_, moved := benchEndpoint(0, 1)
	before := map[flow.Key]flow.Content{}
	for _, f := range pipeline.EndpointFlows(net, old) {
		before[f.Key()] = f.Content()
	}
	var mods uint64
	after := map[flow.Key]bool{}
	for _, f := range pipeline.EndpointFlows(net, moved) {
		after[f.Key()] = true
		if c, ok := before[f.Key()]; !ok || c != f.Content() {
			mods++ // added or changed: one add
		}
	}
	for k := range before {
		if !after[k] {
			mods++ // gone: one delete
		}
	}
	return mods * uint64(n)
}

// BenchmarkAgentVswitchdRestart kills ovs-vswitchd under an agent with 10,000
// programmed endpoints, starts it again and measures until the whole
// pipeline is back, as seen by ovs-ofctl; the agent's log splits the time at
// its reconnection. The reference, in the same run: with the agent stopped,
// the same restart, and `ovs-ofctl --bundle add-flows` of the same flows
// started as soon as the bridge's socket appears (retried until it works).
func BenchmarkAgentVswitchdRestart(b *testing.B) {
	for i := 0; i < b.N; i++ {
		e := newAgentBed(b, "bvsr")
		r := e.programmed(b, benchEndpoints, nil)
		want := pipelineFlows(benchEndpoints)
		before := r.agent.Status().OpenFlow

		start, mgmt, started := e.restartVswitchd(b, nil)
		e.waitFlows(b, want, 2*time.Minute)
		back := time.Since(start)
		synced := r.log.milestone(b, "pipeline synchronised", start)
		took := synced.attrs["took"].Duration()
		connected := synced.time.Add(-took).Sub(start)

		st := r.agent.Status()
		if st.OpenFlow.Reconnects != before.Reconnects+1 || !st.Ready {
			b.Fatalf("agent after vswitchd restart: %+v", st.OpenFlow)
		}
		// Failed attempts: dials while ovs-vswitchd was down, and Syncs that
		// failed (e.g. timed out) after connecting.
		b.ReportMetric(float64(st.OpenFlow.Failures-before.Failures), "connect-failures")
		b.ReportMetric(back.Seconds(), "pipeline-back-s")
		b.ReportMetric(started.Seconds(), "vswitchd-detached-s")
		socket := <-mgmt
		b.ReportMetric(socket.Seconds(), "mgmt-socket-s")
		b.ReportMetric(connected.Seconds(), "agent-connected-s")
		b.ReportMetric(took.Seconds(), "sync-s")
		b.ReportMetric((back - connected).Seconds(), "connected-to-back-s")
		b.ReportMetric((back - socket).Seconds(), "socket-to-back-s")
		b.ReportMetric(float64(synced.attrs["added"].Int64()), "flows-added")
		r.stop()
		b.ReportMetric(e.ofctlAfterRestart(b, want).Seconds(), "ofctl-socket-to-back-s")
		b.ReportMetric(0, "ns/op")
	}
}

// restartVswitchd kills ovs-vswitchd and starts it again. It returns when
// the kill was done, when the bridge's management socket reappeared (a
// channel: it may be after the return) and how long the start took. If set,
// onSocket runs as soon as the socket appears (not on the caller's goroutine).
func (e *agentBed) restartVswitchd(b *testing.B, onSocket func()) (time.Time, <-chan time.Duration, time.Duration) {
	b.Helper()
	e.node.KillVswitchd(b)
	mgmtPath := filepath.Join(e.node.Dir, agentBridge+".mgmt")
	// A killed daemon usually leaves its socket file: remove the stale
	// one so that its reappearance times the new ovs-vswitchd.
	if err := os.Remove(mgmtPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		b.Fatal(err)
	}
	start := time.Now()
	mgmt := make(chan time.Duration, 1)
	go func() {
		d := waitFile(mgmtPath, start, 2*time.Minute)
		if d >= 0 && onSocket != nil {
			onSocket()
		}
		mgmt <- d
	}()
	e.node.StartVswitchd(b) // --detach: returns once it configured the bridge
	return start, mgmt, time.Since(start)
}

// ofctlAfterRestart is the reference for the agent: with no agent running,
// it restarts ovs-vswitchd and runs `ovs-ofctl --bundle add-flows` of br-int's
// want flows from the moment the socket appears, again until it succeeds. It
// returns the time from the socket's appearance to the success.
func (e *agentBed) ofctlAfterRestart(b *testing.B, want int) time.Duration {
	b.Helper()
	path := e.flowsFile(b, want)
	var done time.Time
	deadline := time.Now().Add(2 * time.Minute)
	start, mgmt, _ := e.restartVswitchd(b, func() {
		for time.Now().Before(deadline) {
			if _, err := e.node.OfctlErr("--bundle", "add-flows", agentBridge, path); err == nil {
				done = time.Now()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	socket := <-mgmt // onSocket has returned
	if socket < 0 || done.IsZero() {
		b.Fatalf("br-int.mgmt reappeared after %v; ovs-ofctl add-flows worked: %v", socket, !done.IsZero())
	}
	e.waitFlows(b, want, 10*time.Second)
	return done.Sub(start) - socket
}

// waitFile waits for path to exist and returns how long after start it did
// (a negative duration if it did not appear within timeout).
func waitFile(path string, start time.Time, timeout time.Duration) time.Duration {
	for time.Since(start) < timeout {
		if _, err := os.Stat(path); err == nil {
			return time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return -1
}
