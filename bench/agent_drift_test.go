package bench

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/contiv/libOpenflow/openflow13"
	"github.com/contiv/libOpenflow/util"

	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
)

const driftRepeats = 20

// BenchmarkAgentDriftRepair measures how fast the agent repairs changes
// made behind its back while 10,000 endpoints are programmed (50,000+
// flows), 20 times each: a rogue flow added with ovs-ofctl (removed), and
// one endpoint's l2_forward flow deleted with ovs-ofctl (put back). The
// time runs from the change to its repair, both as an independent
// `ovs-ofctl monitor` sees them (no polling). It also reports how many full
// Syncs ran meanwhile (with OVS's flow monitor: none, the repairs read
// only the table and cookie concerned), and what ovs-vswitchd alone takes
// at this size to answer the requests a repair makes (ovsCosts).
func BenchmarkAgentDriftRepair(b *testing.B) {
	for i := 0; i < b.N; i++ {
		e := newAgentBed(b, "bdrift")
		r := e.programmed(b, benchEndpoints, nil)
		w := e.watchEvents(b)
		time.Sleep(2 * time.Second) // start-up batches
		costs := e.ovsCosts(b, driftRepeats)
		before := r.agent.Status()
		rogue, restore := driftRounds(b, e, w, benchEndpoints)
		after := r.agent.Status()
		b.ReportMetric(ms(quantile(rogue, 0.5)), "rogue-removed-p50-ms")
		b.ReportMetric(ms(quantile(rogue, 1)), "rogue-removed-max-ms")
		b.ReportMetric(ms(quantile(restore, 0.5)), "flow-restored-p50-ms")
		b.ReportMetric(ms(quantile(restore, 1)), "flow-restored-max-ms")
		b.ReportMetric(ms(quantile(costs.echo, 0.5)), "ovs-echo-p50-ms")
		b.ReportMetric(ms(quantile(costs.dump, 0.5)), "ovs-cookie-dump-p50-ms")
		b.ReportMetric(ms(quantile(costs.bundle, 0.5)), "ovs-bundle-p50-ms")
		b.ReportMetric(float64(after.Reconcile.Syncs-before.Reconcile.Syncs), "full-syncs")
		b.ReportMetric(float64(after.Reconcile.ScopeSyncs-before.Reconcile.ScopeSyncs), "scoped-syncs")
		b.ReportMetric(0, "ns/op")
		r.stop()
	}
}

// driftRounds makes the two changes driftRepeats times (endpoints: how many
// are programmed) and returns how long each took to be repaired.
func driftRounds(b *testing.B, e *agentBed, w *eventWatch, endpoints int) (rogue, restore []time.Duration) {
	for k := range driftRepeats {
		cookie := uint64(0x0dd0_0000_0000_0000) | uint64(k)
		spec := fmt.Sprintf("table=%d,cookie=%#x,priority=999,ip,nw_dst=10.99.0.%d,actions=drop", pipeline.L2Forward.ID(), cookie, k)
		e.node.Ofctl(b, "add-flow", agentBridge, spec)
		rogue = append(rogue, w.between(b, cookie, "ADDED", "DELETED"))

		_, ep := benchEndpoint(k*endpoints/driftRepeats, 0)
		e.node.Ofctl(b, "del-flows", agentBridge, fmt.Sprintf("table=%d,cookie=%#x/-1", pipeline.L2Forward.ID(), ep.Cookie()))
		restore = append(restore, w.between(b, ep.Cookie(), "DELETED", "ADDED"))
	}
	return rogue, restore
}

// ovsCosts measures, n times each on a connection of its own, what the
// requests of a scoped repair cost ovs-vswitchd at this size: an echo (the
// floor), a flow-stats request for one table and one exact cookie, and an
// atomic bundle adding one flow (in table 200, which the agent ignores).
type ovsCosts struct{ echo, dump, bundle []time.Duration }

func (e *agentBed) ovsCosts(b *testing.B, n int) ovsCosts {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := openflow.Dial(ctx, openflow.Config{Addr: e.node.MgmtAddr(agentBridge), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	_, ep := benchEndpoint(1, 0)
	var out ovsCosts
	for i := range n {
		out.echo = append(out.echo, timed(b, func() error { _, err := c.Request(ctx, openflow13.NewEchoRequest()); return err }))
		out.dump = append(out.dump, timed(b, func() error {
			_, err := c.FlowStats(ctx, openflow.FlowStatsFilter{TableID: pipeline.L2Forward.ID(), Cookie: ep.Cookie(), CookieMask: ^uint64(0)})
			return err
		}))
		out.bundle = append(out.bundle, timed(b, func() error {
			fm := openflow13.NewFlowMod()
			fm.TableId, fm.Priority, fm.Cookie = 200, uint16(i+1), 0x0dd1
			return installBundle(ctx, c, []util.Message{fm})
		}))
		time.Sleep(10 * time.Millisecond)
	}
	return out
}

// timed runs f and returns how long it took.
func timed(b *testing.B, f func() error) time.Duration {
	start := time.Now()
	if err := f(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// eventWatch is an independent observer of flow changes on br-int: an
// `ovs-ofctl monitor br-int watch:!initial` (OVS's flow monitor), keeping
// the times of the ADDED and DELETED events per cookie.
type eventWatch struct {
	mu   sync.Mutex
	seen map[string][]time.Time // "ADDED/0x.." -> arrival times
}

// total is the number of events seen so far.
func (w *eventWatch) total() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, ts := range w.seen {
		n += len(ts)
	}
	return n
}

func (e *agentBed) watchEvents(b *testing.B) *eventWatch {
	b.Helper()
	w := &eventWatch{seen: map[string][]time.Time{}}
	follow(b, flowMonitor(e.node.Dir), func(now time.Time, line string) {
		// " event=DELETED reason=delete table=5 cookie=0xfca0... ..."
		f := strings.Fields(line)
		if len(f) < 3 || !strings.HasPrefix(f[0], "event=") {
			return
		}
		for _, x := range f[1:] {
			if c, ok := strings.CutPrefix(x, "cookie="); ok {
				key := strings.TrimPrefix(f[0], "event=") + "/" + c
				w.mu.Lock()
				w.seen[key] = append(w.seen[key], now)
				w.mu.Unlock()
				return
			}
		}
	})
	return w
}

// between waits for an event first on cookie, then for an event then after
// it, and returns the time between them (the first of each kind not yet
// used up).
func (w *eventWatch) between(b *testing.B, cookie uint64, first, then string) time.Duration {
	b.Helper()
	t0 := w.next(b, fmt.Sprintf("%s/%#x", first, cookie), time.Time{})
	return w.next(b, fmt.Sprintf("%s/%#x", then, cookie), t0).Sub(t0)
}

// next waits up to 10 s for an event key at or after t and consumes it.
func (w *eventWatch) next(b *testing.B, key string, t time.Time) time.Time {
	b.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		for i, at := range w.seen[key] {
			if !at.Before(t) {
				w.seen[key] = w.seen[key][i+1:]
				w.mu.Unlock()
				return at
			}
		}
		w.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	b.Fatalf("no %s event within 10s", key)
	return time.Time{}
}
