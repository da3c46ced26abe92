package agent

import (
	"context"
	"sync"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
	"github.com/ofctl-agent/ofctl-agent/pkg/reconcile"
)

// Drift detection with OVS's flow monitor.
//
// After every (re)connection the agent asks OVS to report flow changes
// made by others (ovs-ofctl, another controller) before its first Sync, so
// that no change can fall between the Sync's dump and the monitor's start:
// a report received before a full Sync's dump started is covered by that
// Sync and dropped, any later one is repaired. The agent's own changes
// come abbreviated and are ignored. Reports are collected for
// repairDelay into scopes (table, cookie and the flows named) and repaired
// on the loop with reconcile.SyncScopes, which reads only those flows. One
// full Sync runs instead when there are too many, when updates were lost,
// or when OVS paused them (a mass change: it reports again after
// resuming). The periodic full Sync stays as a safety net
// (Config.MonitoredVerifyEvery); it is the only detection, every
// VerifyEvery as before, when OVS refuses the monitor (before 3.0).
const (
	repairDelay  = 15 * time.Millisecond  // reports collected this long before a repair
	retryDelay   = time.Second            // after a failed repair
	maxScopes    = 256                    // more (table, cookie) pairs: one full Sync instead
	maxScopeKeys = 4096                   // more flows named: one full Sync instead
	pauseLimit   = time.Second            // paused longer: full Sync without waiting for the resume
	maxBurstWait = 500 * time.Millisecond // a full Sync waits for a burst of reports to end, this long at most
)

// scopeID is a table and a cookie.
type scopeID struct {
	table  uint8
	cookie uint64
}

// driftQueue collects what the flow monitor reported until the loop
// repairs it. The monitor's goroutine adds, the loop takes.
type driftQueue struct {
	maxTable uint8         // tables beyond belong to someone else
	kick     chan struct{} // capacity 1: work is waiting

	mu       sync.Mutex
	scopes   map[scopeID][]flow.Key
	keys     int
	full     bool      // a full Sync is needed
	paused   bool      // OVS paused its reports
	pausedAt time.Time // when
	first    time.Time // receipt of the oldest report not yet repaired
	last     time.Time // and of the newest
	covered  time.Time // reports received before were seen by a full Sync's dump
	pauses   uint64    // times OVS paused its reports
}

func newDriftQueue(maxTable uint8) *driftQueue {
	return &driftQueue{maxTable: maxTable, kick: make(chan struct{}, 1), scopes: map[scopeID][]flow.Key{}}
}

// driftWork is what one repair must do.
type driftWork struct {
	full   bool
	scopes []reconcile.Scope
	since  time.Time // arrival of the oldest report
}

// add records one monitor event. Reports received before the dump of the
// last successful full Sync started are covered by it and dropped.
func (q *driftQueue) add(ev openflow.FlowMonitorEvent) {
	q.mu.Lock()
	defer q.mu.Unlock()
	stale := !ev.Received.IsZero() && ev.Received.Before(q.covered)
	before := q.pending()
	switch ev.Kind {
	case openflow.FlowMonitorUpdates:
		for i := 0; i < len(ev.Updates) && !stale; i++ {
			q.addUpdate(&ev.Updates[i])
		}
	case openflow.FlowMonitorPaused:
		// Reports stop: a full Sync once they resume (or after pauseLimit).
		q.paused, q.pausedAt, q.full = true, time.Now(), true
		q.pauses++
	case openflow.FlowMonitorResumed:
		q.paused = false
		q.full = q.full || !stale
	default: // lost
		q.full = q.full || !stale
	}
	if !q.pending() {
		return
	}
	if !before {
		q.first = ev.Received
	}
	q.last = ev.Received
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// cover records that a full Sync whose dump started at start succeeded:
// the work of reports received before it is done.
func (q *driftQueue) cover(start time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if start.After(q.covered) {
		q.covered = start
	}
	if q.pending() && !q.paused && q.last.Before(start) {
		q.clearWork()
	}
}

// clearWork drops the pending work (q.mu held).
func (q *driftQueue) clearWork() {
	q.scopes, q.keys, q.full, q.first, q.last = map[scopeID][]flow.Key{}, 0, false, time.Time{}, time.Time{}
}

// addUpdate records one reported flow change of someone else.
func (q *driftQueue) addUpdate(u *openflow.FlowUpdate) {
	if u.Event == openflow.FlowAbbrev || u.TableID > q.maxTable || q.full {
		return // ours, not our table, or a full Sync covers it anyway
	}
	k, err := updateKey(u)
	id := scopeID{u.TableID, u.Cookie}
	q.scopes[id] = append(q.scopes[id], k)
	q.keys++
	if err != nil || len(q.scopes) > maxScopes || q.keys > maxScopeKeys {
		q.full = true
		clear(q.scopes)
		q.keys = 0
	}
}

func (q *driftQueue) pending() bool { return q.full || len(q.scopes) > 0 }

// take returns the work to do now, or how long to wait first: a full Sync
// waits until OVS resumed its reports (up to pauseLimit), and until a burst
// of reports (a mass change, often followed by a pause) has ended for
// repairDelay (up to maxBurstWait), so that one Sync covers it all.
func (q *driftQueue) take() (driftWork, time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.paused {
		if wait := pauseLimit - time.Since(q.pausedAt); wait > 0 {
			return driftWork{}, wait
		}
	}
	if q.full && !q.last.IsZero() && time.Since(q.first) < maxBurstWait {
		if wait := repairDelay - time.Since(q.last); wait > 0 {
			return driftWork{}, wait
		}
	}
	w := driftWork{full: q.full, since: q.first}
	if !q.full {
		for id, keys := range q.scopes {
			w.scopes = append(w.scopes, reconcile.Scope{Table: id.table, Cookie: id.cookie, Keys: keys})
		}
	}
	q.clearWork()
	return w, 0
}

// retry puts back a failed repair as a full Sync.
func (q *driftQueue) retry(since time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.full = true
	if q.first.IsZero() || since.Before(q.first) {
		q.first = since
	}
	if q.last.IsZero() {
		q.last = since
	}
}

// pauseCount is how many times OVS paused its reports.
func (q *driftQueue) pauseCount() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.pauses
}

// reset forgets everything (a new connection: its Sync repairs it all).
func (q *driftQueue) reset() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.clearWork()
	q.paused = false
}

// updateKey is the key of the reported flow. pkg/openflow has checked the
// match; if it still cannot be read, the caller falls back to a full Sync.
func updateKey(u *openflow.FlowUpdate) (flow.Key, error) {
	st, err := flow.FromReply(&openflow.FlowStats{TableID: u.TableID, Priority: u.Priority, MatchBytes: u.MatchBytes})
	return st.Key(), err
}

// startMonitor asks OVS for flow change reports on c. A refusal (an OVS
// without the extension) leaves the agent on periodic full comparisons;
// only a failed connection is an error.
func (a *Agent) startMonitor(ctx context.Context, c *openflow.Conn) error {
	a.monitored.Store(false)
	if a.cfg.NoFlowMonitor {
		return nil
	}
	m, err := c.MonitorFlows(ctx, openflow.FlowMonitorRequest{TableID: openflow.AllTables,
		Flags: openflow.MonitorAdd | openflow.MonitorDelete | openflow.MonitorModify})
	if err != nil {
		if c.Err() != nil || ctx.Err() != nil {
			return err
		}
		a.log.Warn("OVS refused the flow monitor: drift is found by comparing every flow every verify-interval",
			"verify_interval", a.cfg.VerifyEvery, "err", err)
		return nil
	}
	a.drift.reset()
	a.monitored.Store(true)
	go func() {
		for ev := range m.C {
			a.drift.add(ev)
		}
	}()
	return nil
}

// repairDrift repairs what the flow monitor reported, on the loop. It
// returns when to run again if it could not finish (0: done).
func (a *Agent) repairDrift(ctx context.Context) time.Duration {
	w, wait := a.drift.take()
	if wait > 0 {
		return wait
	}
	if c := a.conn.Load(); c == nil || c.Err() != nil {
		return 0 // the Sync after reconnecting repairs everything
	}
	var res reconcile.SyncResult
	var err error
	switch {
	case w.full:
		res, err = a.sync(ctx)
	case len(w.scopes) > 0:
		res, err = a.rec.SyncScopes(ctx, w.scopes)
	default:
		return 0
	}
	if err != nil {
		a.log.Warn("repairing drift reported by OVS failed; a full sync follows", "err", err, "full", w.full)
		a.drift.retry(w.since)
		return retryDelay
	}
	a.countRepairs(res)
	if res.Changed() > 0 {
		a.log.Warn("repaired drift reported by OVS", "full", w.full, "scopes", len(w.scopes), "added", res.Added,
			"modified", res.Modified, "deleted", res.Deleted, "since_report", time.Since(w.since))
	}
	return 0
}

// countRepairs adds the flows a repair fixed to Status.Repairs.
func (a *Agent) countRepairs(res reconcile.SyncResult) {
	if res.Changed() == 0 {
		return
	}
	a.mu.Lock()
	a.repairs += uint64(res.Changed())
	a.mu.Unlock()
}

// repairTimer schedules repairDrift on the loop: reports arriving within
// repairDelay are repaired together, and a report never waits longer
// than that once OVS sends it (a pending longer wait is shortened).
type repairTimer struct {
	t     *time.Timer
	armed bool
	at    time.Time
}

func newRepairTimer() *repairTimer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &repairTimer{t: t}
}

// soon makes the timer fire within repairDelay.
func (r *repairTimer) soon() { r.arm(repairDelay) }

func (r *repairTimer) arm(d time.Duration) {
	at := time.Now().Add(d)
	if r.armed && !r.at.After(at) {
		return
	}
	r.t.Reset(d)
	r.armed, r.at = true, at
}

// fired records that the timer fired; next > 0 arms it again.
func (r *repairTimer) fired(next time.Duration) {
	r.armed = false
	if next > 0 {
		r.arm(next)
	}
}
