package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
	"github.com/ofctl-agent/ofctl-agent/pkg/reconcile"
)

// At start-up the OpenFlow connection comes up while the agent is still
// reading OVSDB and building its model. Rather than dumping the flows only
// once the model is there, the first connection dumps them at once, keeps
// the dump undecoded (openflow.FlowDump, about the wire's size) and waits
// for the model; the first Sync then compares that dump with the desired
// flows instead of asking OVS again. OVS's flow monitor is started before
// the dump, so a change made after it is reported and repaired like any
// later drift (the Sync covers only reports received before the dump
// started: see sync).

// prefetched is a flow dump taken on conn before the model was loaded.
type prefetched struct {
	conn  *openflow.Conn
	start time.Time // when the dump was requested
	index *reconcile.DumpIndex
}

// prefetch, on a connection made before the model is loaded, dumps the
// flows now, waits for the model and leaves the dump for the first Sync.
// Later connections do nothing here.
func (a *Agent) prefetch(ctx context.Context, c *openflow.Conn) error {
	select {
	case <-a.loaded:
		return nil
	default:
	}
	start := time.Now()
	d, err := c.DumpFlowStats(ctx, openflow.FlowStatsFilter{TableID: openflow.AllTables})
	if err != nil {
		return fmt.Errorf("dump flows: %w", err)
	}
	index, err := a.rec.IndexDump(func(each func(*flow.Stats) error) error { return d.Each(a.sw.ours(each)) })
	if err != nil {
		return fmt.Errorf("dump flows: %w", err)
	}
	a.log.Debug("flows dumped while the model loads", "flows", d.Len(), "took", time.Since(start))
	select {
	case <-a.loaded:
	case <-c.Done():
		return c.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
	a.pre.Store(&prefetched{conn: c, start: start, index: index})
	return nil
}

// takePrefetched returns, once, the dump prefetch left for connection c
// (nil if none).
func (a *Agent) takePrefetched(c *openflow.Conn) *reconcile.DumpIndex {
	if p := a.pre.Swap(nil); p != nil && p.conn == c {
		return p.index
	}
	return nil
}

// dumpStart is when the dump the next full Sync compares with starts: that
// of the prefetched dump of the current connection, else now.
func (a *Agent) dumpStart() time.Time {
	if p := a.pre.Load(); p != nil && p.conn == a.conn.Load() {
		return p.start
	}
	return time.Now()
}
