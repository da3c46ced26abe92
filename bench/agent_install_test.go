package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkAgentFullInstall measures how long the agent takes to program N
// endpoints on an empty bridge: it starts with the endpoints already in
// OVSDB and no flow in br-int, and is ready when its first Sync is
// confirmed. The reference is ovs-ofctl --bundle add-flows of the very same
// flows (dumped after the agent installed them), on the same switch.
func BenchmarkAgentFullInstall(b *testing.B) {
	for _, n := range []int{1_000, benchEndpoints} {
		b.Run(fmt.Sprintf("endpoints=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				fullInstall(b, n)
			}
		})
	}
}

func fullInstall(b *testing.B, n int) {
	e := newAgentBed(b, "bfull")
	first := e.start(b, nil) // creates br-int and the tunnel port
	first.waitReady(b, 30*time.Second)
	first.stop()
	e.addEndpoints(b, 0, n)
	e.node.Ofctl(b, "del-flows", agentBridge)
	if got := e.flowCount(); got != 0 {
		b.Fatalf("br-int holds %d flows before the agent starts, want 0", got)
	}

	r := e.start(b, nil)
	ready := r.waitReady(b, 2*time.Minute)
	load := r.log.milestone(b, "model loaded", r.started).time.Sub(r.started)
	took := r.log.milestone(b, "pipeline synchronised", r.started).attrs["took"].Duration()
	want := pipelineFlows(n)
	e.waitFlows(b, want, 10*time.Second)
	if mods := r.agent.Status().Reconcile.FlowMods; mods != uint64(want) {
		r.log.mu.Lock()
		for _, rec := range r.log.recs {
			b.Logf("%s %s %v", rec.time.Format("15:04:05.000"), rec.msg, rec.attrs)
		}
		r.log.mu.Unlock()
		b.Fatalf("agent sent %d flow_mods, want %d (one add per flow): %+v", mods, want, r.agent.Status())
	}
	r.stop()

	ofctl := e.ofctlReinstall(b, want)
	b.ReportMetric(ready.Seconds(), "agent-ready-s")
	b.ReportMetric(load.Seconds(), "agent-load-s")
	b.ReportMetric(took.Seconds(), "agent-sync-s")
	b.ReportMetric(ofctl.Seconds(), "ofctl-bundle-s")
	b.ReportMetric(took.Seconds()/ofctl.Seconds(), "sync/ofctl")
	b.ReportMetric(ready.Seconds()/ofctl.Seconds(), "ready/ofctl")
	b.ReportMetric(0, "ns/op")
}

// ofctlReinstall dumps br-int's flows as text, deletes them and times
// `ovs-ofctl -O OpenFlow13 --bundle add-flows` putting them back (writing
// the file is not timed); it checks the count afterwards.
func (e *agentBed) ofctlReinstall(b *testing.B, want int) time.Duration {
	b.Helper()
	path := e.flowsFile(b, want)
	e.node.Ofctl(b, "del-flows", agentBridge)
	e.waitFlows(b, 0, 10*time.Second)
	start := time.Now()
	e.node.Ofctl(b, "--bundle", "add-flows", agentBridge, path)
	took := time.Since(start)
	e.waitFlows(b, want, 10*time.Second)
	return took
}

// flowsFile writes br-int's flows (want of them) to a file that
// `ovs-ofctl add-flows` reads, and returns its path.
func (e *agentBed) flowsFile(b *testing.B, want int) string {
	b.Helper()
	var sb strings.Builder
	for _, line := range strings.Split(e.node.Ofctl(b, "dump-flows", "--no-stats", agentBridge), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "OFPST_FLOW") {
			sb.WriteString(line)
			sb.WriteByte('\n')
		}
	}
	if got := strings.Count(sb.String(), "\n"); got != want {
		b.Fatalf("dump-flows gave %d flows, want %d", got, want)
	}
	path := filepath.Join(b.TempDir(), "flows.txt")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	return path
}
