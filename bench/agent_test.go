package bench

import (
	"os"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/agent"
)

const (
	benchEndpoints = 10_000
	benchAdds      = 200
)

// applyLog collects agent.Config.OnApply reports without blocking the
// agent's loop.
type applyLog struct{ ch chan agent.Applied }

func newApplyLog() *applyLog { return &applyLog{ch: make(chan agent.Applied, 1<<16)} }

func (l *applyLog) hook(a agent.Applied) {
	select {
	case l.ch <- a:
	default:
		panic("bench: OnApply log overflow")
	}
}

// drain returns the reports queued so far.
func (l *applyLog) drain() []agent.Applied {
	var out []agent.Applied
	for {
		select {
		case a := <-l.ch:
			out = append(out, a)
		default:
			return out
		}
	}
}

// addResult is what one endpoint addition cost.
type addResult struct {
	latency  time.Duration // agent: OnApply.Latency of the batch that sent flow_mods
	queued   time.Duration // of it: the OVSDB update waiting for the agent's loop
	commit   time.Duration // of it: the bundle round trip
	flowMods int           // every flow_mod the agent sent for this add
	e2e      time.Duration // OVSDB commit (ovsdb-client started) -> OVS's flow monitor reported all its flows
	ovs      time.Duration // OVSDB commit -> ofport in OVSDB (ovs-vswitchd's share)
	syncs    uint64        // drift-check Syncs that ran during this add
}

// BenchmarkAgentAddEndpoint measures adding one endpoint while 10,000 are
// programmed, 200 times in a row, in the two ways an endpoint appears in
// OVSDB:
//
//   - port: one transaction adds a type=dummy port that carries the
//     external_ids (what attach and ovs-docker do). ovs-vswitchd
//     reconfigures all its ports and assigns the ofport meanwhile: the
//     endpoint exists for the agent once the ofport is in OVSDB.
//   - label: the port already exists with its ofport (a patch port added
//     beforehand, unlabelled) and one transaction sets its external_ids
//     (the create-then-label order of OVN's iface-id). ovs-vswitchd does not
//     read Interface external_ids, so it stays idle.
//
// Per add: the agent's latency (OnApply: the OVSDB update at the agent ->
// bundle confirmed; of it, the wait for the loop and the bundle round trip
// apart), its flow_mods (must be exactly one endpoint's flows), the end-to-end
// time from the OVSDB transaction to OVS's flow monitor reporting the flows,
// and (port) the part of it ovs-vswitchd needs to assign the ofport. It also
// reports the memory of the test process (agent + harness) at 10,000
// endpoints, and ovs-vswitchd's CPU during the adds.
func BenchmarkAgentAddEndpoint(b *testing.B) {
	b.Run("port", func(b *testing.B) { benchAddEndpoints(b, false) })
	b.Run("label", func(b *testing.B) { benchAddEndpoints(b, true) })
}

func benchAddEndpoints(b *testing.B, label bool) {
	for i := 0; i < b.N; i++ {
		e := newAgentBed(b, "badd")
		log := newApplyLog()
		r := e.programmed(b, benchEndpoints, log.hook)
		rss, heap := memory(b)
		add := e.addDummy
		if label {
			// The ports to label, unlabelled: not endpoints yet.
			e.addPorts(b, benchEndpoints, benchEndpoints+benchAdds, false)
			add = e.labelPort
		}
		obs := observers{ofports: e.watchOFPorts(b), flows: e.watchFlows(b)}
		time.Sleep(2 * time.Second) // let start-up batches and a drift check pass
		log.drain()

		gap := addGap(b)
		cpu0 := procCPU(b, e.node.VswitchdPid())
		res := make([]addResult, benchAdds)
		for k := range res {
			if k > 0 { // late reports belong to the previous add
				time.Sleep(gap)
				res[k-1].flowMods += sumFlowMods(log.drain())
			}
			res[k] = addOne(b, r, log, obs, benchEndpoints+k, add)
		}
		vswitchdCPU := procCPU(b, e.node.VswitchdPid()) - cpu0 // gaps included
		time.Sleep(1500 * time.Millisecond)
		res[len(res)-1].flowMods += sumFlowMods(log.drain())
		checkAdds(b, res)
		e.waitFlows(b, pipelineFlows(benchEndpoints+benchAdds), 10*time.Second)
		reportAdds(b, res, rss, heap, !label)
		b.ReportMetric(ms(vswitchdCPU)/benchAdds, "vswitchd-cpu-ms/add")
		r.stop()
	}
}

// addGap is the pause between two adds: 250 ms, or OFCTL_BENCH_ADD_GAP (a
// Go duration, 0 for back to back). At 10,000 ports every change to the flow
// tables costs ovs-vswitchd ~40 ms of CPU after it answered (~0.7 ms on an
// empty bridge); with no pause an add waits for the previous add's share.
func addGap(b *testing.B) time.Duration {
	b.Helper()
	s := os.Getenv("OFCTL_BENCH_ADD_GAP")
	if s == "" {
		return 250 * time.Millisecond
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		b.Fatalf("OFCTL_BENCH_ADD_GAP: %v", err)
	}
	return d
}

// addOne adds endpoint i with add and waits until OVS reports all its
// flows added and the agent reported the batch that sent them.
func addOne(b *testing.B, r *runningAgent, log *applyLog, obs observers, i int, add func(*testing.B, int)) addResult {
	b.Helper()
	_, ep := benchEndpoint(i, 0)
	want := flowsPerEndpoint()
	syncs := r.agent.Status().Reconcile.Syncs
	start := time.Now()
	add(b, i)
	var res addResult
	for {
		if n, last := obs.flows.seen(ep.Cookie()); n >= want {
			res.e2e = last.Sub(start)
			break
		}
		if time.Since(start) > 20*time.Second {
			seen, _ := obs.flows.seen(ep.Cookie())
			b.Fatalf("endpoint %d: flows not in OVS after 20s (flow monitor saw %d) %+v", i, seen, r.agent.Status())
		}
		time.Sleep(time.Millisecond)
	}
	if t, ok := obs.ofports.when(ep.Port); ok && t.After(start) {
		res.ovs = t.Sub(start)
	}
	// OnApply runs right after the bundle is confirmed; collect until the
	// batch with this endpoint's flow_mods is in.
	deadline := time.After(5 * time.Second)
	for res.flowMods == 0 {
		select {
		case a := <-log.ch:
			res.flowMods += a.FlowMods
			if a.FlowMods > 0 {
				res.latency, res.queued, res.commit = a.Latency, a.Queued, a.Commit
			}
		case <-deadline:
			b.Fatalf("endpoint %d: no OnApply with flow_mods", i)
		}
	}
	res.syncs = r.agent.Status().Reconcile.Syncs - syncs
	return res
}

// observers are the independent views of OVS used per add.
type observers struct {
	ofports *ofportWatch
	flows   *flowWatch
}

func sumFlowMods(as []agent.Applied) int {
	n := 0
	for _, a := range as {
		n += a.FlowMods
	}
	return n
}

// checkAdds asserts the correctness property: each add sent exactly the new
// endpoint's flows, nothing else.
func checkAdds(b *testing.B, res []addResult) {
	b.Helper()
	want := flowsPerEndpoint()
	for k, r := range res {
		if r.flowMods != want {
			b.Fatalf("add %d: agent sent %d flow_mods, want %d (only the new endpoint's flows)", k, r.flowMods, want)
		}
	}
}

// reportAdds reports the adds' numbers; ofports: the adds waited for
// ovs-vswitchd to assign an ofport (the port case).
func reportAdds(b *testing.B, res []addResult, rss, heap float64, ofports bool) {
	var lat, e2e, ovs, agentSide, withSync, queued, commit []time.Duration
	fm := 0
	for _, r := range res {
		lat, e2e, ovs = append(lat, r.latency), append(e2e, r.e2e), append(ovs, r.ovs)
		queued, commit = append(queued, r.queued), append(commit, r.commit)
		agentSide = append(agentSide, r.e2e-r.ovs)
		fm += r.flowMods
		if r.syncs > 0 {
			withSync = append(withSync, r.e2e-r.ovs)
		}
	}
	b.ReportMetric(ms(quantile(lat, 0.5)), "p50-ms")
	b.ReportMetric(ms(quantile(lat, 0.99)), "p99-ms")
	b.ReportMetric(ms(quantile(lat, 1)), "max-ms")
	b.ReportMetric(ms(quantile(queued, 0.99)), "queued-p99-ms")
	b.ReportMetric(ms(quantile(commit, 0.99)), "commit-p99-ms")
	b.ReportMetric(float64(fm)/float64(len(res)), "flow_mods/add")
	b.ReportMetric(ms(quantile(e2e, 0.5)), "e2e-p50-ms")
	b.ReportMetric(ms(quantile(e2e, 0.99)), "e2e-p99-ms")
	if ofports {
		b.ReportMetric(ms(quantile(ovs, 0.5)), "ofport-p50-ms")
		b.ReportMetric(ms(quantile(agentSide, 0.5)), "ofport-to-flows-p50-ms")
		b.ReportMetric(ms(quantile(agentSide, 0.99)), "ofport-to-flows-p99-ms")
	}
	b.ReportMetric(float64(len(withSync)), "adds-during-sync")
	b.ReportMetric(rss, "rss-MiB")
	b.ReportMetric(heap, "heap-MiB")
	b.ReportMetric(0, "ns/op")
}
