package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/gateway"
	"github.com/ofctl-agent/ofctl-agent/pkg/ipam"
	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/pkg/reconcile"
)

// maxBatch bounds how many queued interface events are folded into one
// bundle (a single batch from the subscription may exceed it).
const maxBatch = 1024

// loop is the only writer of the model after start-up.
func (a *Agent) loop(ctx context.Context, sub *ovsdb.Subscription) {
	verify := time.NewTimer(a.cfg.VerifyEvery)
	defer verify.Stop()
	repair := newRepairTimer()
	defer repair.t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case batch := <-sub.C():
			taken := time.Now()
			start := taken
			events, changed := 0, false
			for {
				for _, ev := range batch {
					// Latency starts when the update reached the agent.
					if r := ev.Received; !r.IsZero() && r.Before(start) {
						start = r
					}
					changed = a.handleInterface(ev) || changed
				}
				events += len(batch)
				if events >= maxBatch || !a.moreEvents(sub, &batch) {
					break
				}
			}
			flushed := time.Now()
			n := a.flush(ctx)
			a.updateInterest() // a network's first endpoint brings its remote endpoints in, its last drops them
			a.publish()
			a.applyNAT(a.model.currentView())
			a.settleMarks()
			if a.cfg.OnApply != nil && (n > 0 || changed) {
				now := time.Now()
				a.cfg.OnApply(Applied{Events: events, FlowMods: n, Latency: now.Sub(start),
					Queued: taken.Sub(start), Commit: now.Sub(flushed)})
			}
		case v := <-a.cfg.Cluster.Updates():
			a.log.Info("cluster view changed", "revision", v.Revision, "networks", len(v.Networks), "hosts", len(v.Hosts))
			loadedBefore := a.model.currentView().Loaded
			a.model.setView(v, a.reg.Active())
			a.ipam.SetView(v, a.hostGateways(v))
			a.allocatorView(v)
			if !slices.Equal(loadedBefore, v.Loaded) { // installed marks waiting for a network's load
				a.marks.dirtyAll()
			}
			a.updateInterest()
			a.applyViewNames(v)
			a.applyDNS(v)
			a.flush(ctx)
			a.applyNAT(a.model.currentView())
			a.settleMarks()
		case <-a.marks.kick: // a Sync completed
			a.settleMarks()
		case <-verify.C:
			if a.dns.failed {
				a.applyDNS(a.model.currentView())
			}
			next := a.verify(ctx)
			verify.Reset(next)
		case <-a.drift.kick:
			repair.soon()
		case <-repair.t.C:
			repair.fired(a.repairDrift(ctx))
		}
	}
}

// moreEvents takes another batch if one is ready, without waiting.
func (a *Agent) moreEvents(sub *ovsdb.Subscription, batch *[]ovsdb.InterfaceEvent) bool {
	select {
	case b, ok := <-sub.C():
		*batch = b
		return ok
	default:
		return false
	}
}

// handleInterface turns one OVSDB interface event into endpoint changes.
// It reports whether the event changed anything but the interface's
// status keys (the agent's own writes come back as such events).
func (a *Agent) handleInterface(ev ovsdb.InterfaceEvent) bool {
	iface := ev.Interface
	a.marks.seen(ev)
	if ev.Kind == ovsdb.Deleted { // every port holds the address it claims (pkg/ipam)
		a.ipam.DeletePort(iface.Name)
	} else {
		a.ipam.SetPort(iface.Name, iface.ExternalIDs)
	}
	if iface.Name == a.cfg.TunnelPort {
		// Only a real number changes the pipeline. While the port is being
		// put back (deleted, re-created with the same ofport_request, no
		// ofport yet) the flows keep pointing at its number: output to a
		// missing port drops, and removing and re-adding every tunnel flow
		// would cost far more than it protects.
		if ev.Kind != ovsdb.Deleted && iface.OFPort > 0 {
			var active []endpoint.Endpoint // what a rebuild needs: none before the view (start-up)
			if a.model.loaded() {
				active = a.reg.Active()
			}
			if ofport := uint32(iface.OFPort); a.model.setTunnelPort(ofport, active) {
				a.log.Info("tunnel port", "name", iface.Name, "ofport", ofport)
				return true
			}
		} else {
			a.log.Debug("tunnel port not usable (yet)", "name", iface.Name, "event", ev.Kind, "ofport", iface.OFPort, "error", iface.Error)
		}
		return false
	}
	if ev.Kind == ovsdb.Deleted {
		delete(a.badIfaces, iface.Name)
		delete(a.waiting, iface.Name)
		return a.apply(a.reg.Delete(iface.Name))
	}
	ep, err := endpoint.FromInterface(iface.Name, iface.OFPort, iface.ExternalIDs)
	switch {
	case errors.Is(err, endpoint.ErrNoOFPort) && iface.OFPort < 0:
		err = fmt.Errorf("%w: %s", err, iface.Error)
	case errors.Is(err, endpoint.ErrNotEndpoint), errors.Is(err, endpoint.ErrNoOFPort):
		err = nil // not ours, or OVS has not assigned the ofport yet
	case err == nil:
		delete(a.badIfaces, iface.Name)
		return a.apply(a.reg.Upsert(ep))
	}
	changed := false
	if err != nil && a.badIfaces[iface.Name] != err.Error() {
		// Report a problem once, not on every update of the row.
		a.badIfaces[iface.Name] = err.Error()
		a.reject("interface", err)
		changed = true
	}
	delete(a.waiting, iface.Name)
	return a.apply(a.reg.Delete(iface.Name)) || changed
}

// apply hands a registry change to the model; it reports whether there was
// one.
func (a *Agent) apply(ch endpoint.Change) bool {
	a.toPublish = a.toPublish || len(ch.Added)+len(ch.Removed) > 0
	for _, ep := range ch.Removed {
		a.deleteLocalName(ep)
		a.model.removeEndpoint(ep)
		a.marks.touch(ep.Port)
	}
	for _, ep := range ch.Added {
		a.quietPort(ep)
		a.model.setEndpoint(ep)
		a.setLocalName(ep)
		delete(a.waiting, ep.Port)
		a.marks.touch(ep.Port)
	}
	for _, c := range ch.Conflicts {
		a.reject("conflict", c)
		a.waiting[c.Endpoint.Port] = c.Error()
		a.marks.touch(c.Endpoint.Port)
	}
	return !ch.Empty()
}

// publish hands the active endpoints to the Publisher if they changed.
func (a *Agent) publish() {
	if a.cfg.Publisher != nil && a.toPublish {
		a.cfg.Publisher.PublishEndpoints(a.reg.Active())
	}
	a.toPublish = false
}

// Applied describes one batch of OVSDB interface events turned into flows:
// Latency runs from the arrival of the first event's OVSDB update at the
// agent to OVS's confirmation of the bundle (the flows are in OVS). Of it,
// Queued is the wait before the loop took the event (the loop was busy),
// Commit the flush (bundle round trip) and publication.
type Applied struct {
	Events   int
	FlowMods int
	Latency  time.Duration
	Queued   time.Duration
	Commit   time.Duration
}

// flush commits pending flow_mods and returns how many; a failure is left
// to the next Sync. Until the current connection's first Sync is done the
// reconciler does not know what OVS holds: a Flush then would send every
// flow not yet seen as an add (a restart would rewrite the whole pipeline).
// Changes made meanwhile stay pending and that Sync folds them in.
func (a *Agent) flush(ctx context.Context) int {
	if c := a.conn.Load(); c == nil || a.synced.Load() != c {
		return 0
	}
	start := time.Now()
	n, err := a.rec.Flush(ctx)
	if err != nil {
		a.log.Warn("flush failed; the next sync repairs", "err", err)
		return 0
	}
	if n > 0 {
		a.log.Debug("flushed", "flow_mods", n, "took", time.Since(start))
	}
	a.memory.after(n)
	return n
}

// verify compares OVS with the desired flows and repairs drift. It returns
// when to run next. Without the flow monitor: VerifyEvery, or longer when
// a sync is slow, so the check costs OVS at most ~20% of its time. With
// it, this is a safety net: a full Sync once per MonitoredVerifyEvery
// (checked every VerifyEvery, so that losing the monitor on a reconnection
// brings the old pace back).
func (a *Agent) verify(ctx context.Context) time.Duration {
	c := a.conn.Load()
	if c == nil || c.Err() != nil {
		return a.cfg.VerifyEvery
	}
	if a.unsynced.Load() == c { // its first Sync could not finish: again
		if err := a.syncConn(ctx, c); err != nil {
			a.log.Warn("pipeline sync failed; retrying", "err", err, "in", a.cfg.VerifyEvery)
		}
		return a.cfg.VerifyEvery
	}
	if a.synced.Load() != c { // onConnect's Sync is running: it is this connection's check
		return a.cfg.VerifyEvery
	}
	if a.restoreWait.Load() { // clearing it failed after the last Sync
		a.releaseRestoreWait(ctx)
	}
	if a.rec.RetryDue() { // an owner whose flows OVS refused (reconcile/failure.go)
		a.flush(ctx)
	}
	monitored := a.monitored.Load()
	if since := time.Since(time.Unix(0, a.lastFull.Load())); monitored && since < a.cfg.MonitoredVerifyEvery {
		return min(a.cfg.VerifyEvery, a.cfg.MonitoredVerifyEvery-since)
	}
	res, err := a.sync(ctx)
	if err != nil {
		a.log.Warn("drift check failed", "err", err)
		return a.cfg.VerifyEvery
	}
	a.countRepairs(res)
	if res.Changed() > 0 {
		a.log.Warn("repaired drift in OVS", "added", res.Added, "modified", res.Modified, "deleted", res.Deleted,
			"took", res.Duration, "flow_monitor", monitored)
	}
	if monitored {
		return a.cfg.VerifyEvery
	}
	return max(a.cfg.VerifyEvery, 5*res.Duration)
}

// sync runs one full Sync and reports it to OnSync.
func (a *Agent) sync(ctx context.Context) (reconcile.SyncResult, error) {
	start := a.dumpStart()
	var res reconcile.SyncResult
	var err error
	if idx := a.takePrefetched(a.conn.Load()); idx != nil { // the start's dump (prefetch.go)
		res, err = a.rec.SyncIndexed(ctx, idx)
	} else {
		res, err = a.rec.Sync(ctx)
	}
	if res.Duration == 0 {
		res.Duration = time.Since(start) // failed: Sync sets it only on success
	}
	if err == nil {
		a.lastFull.Store(time.Now().UnixNano())
		a.drift.cover(start)
		a.marks.syncDone() // the loop decides the marks of what it installed
	}
	if a.cfg.OnSync != nil {
		a.cfg.OnSync(res, err)
	}
	return res, err
}

// onConnect runs after every OpenFlow (re)connection: one Sync installs or
// repairs the whole pipeline in one bundle. Flows OVS refuses cost their
// owners alone (reconcile/failure.go); if more owners are refused than one
// Sync can isolate, the connection is kept and the drift check (verify)
// syncs again: a refused flow never tears the connection down.
func (a *Agent) onConnect(ctx context.Context, c *openflow.Conn) error {
	a.conn.Store(c)
	if err := a.startMonitor(ctx, c); err != nil { // before the Sync: see monitor.go
		return err
	}
	if err := a.prefetch(ctx, c); err != nil { // at start-up: dump while the model loads
		return err
	}
	err := a.syncConn(ctx, c)
	var refused *reconcile.RefusedError
	if errors.As(err, &refused) {
		a.unsynced.Store(c)
		a.log.Warn("pipeline sync: OVS refused flows of more owners than one sync isolates; the next drift check continues",
			"err", err, "in", a.cfg.VerifyEvery)
		return nil
	}
	return err
}

// syncConn runs the first full Sync on connection c; once it succeeds,
// flushes may go and the agent is ready.
func (a *Agent) syncConn(ctx context.Context, c *openflow.Conn) error {
	res, err := a.sync(ctx)
	if err != nil {
		return err
	}
	a.synced.Store(c)
	a.unsynced.CompareAndSwap(c, nil)
	a.marks.syncDone() // now that flushes may go, so may marks
	// A change the loop made after the Sync but before the line above was
	// not flushed: send it now rather than with the next event.
	if a.rec.Pending() > 0 {
		a.flush(ctx)
	}
	a.log.Info("pipeline synchronised", "datapath", c.DatapathID(), "kept", res.Kept, "added", res.Added,
		"modified", res.Modified, "deleted", res.Deleted, "took", res.Duration, "flow_monitor", a.monitored.Load(),
		"owners_failing", a.rec.Stats().Failing)
	a.releaseRestoreWait(ctx)
	a.memory.after(res.Added + res.Modified + res.Deleted)
	a.ready.Store(true)
	go func() {
		<-c.Done()
		a.ready.Store(false)
	}()
	a.readyOnce.Do(func() {
		close(a.readyCh)
		if a.cfg.OnReady != nil {
			a.cfg.OnReady()
		}
	})
	return nil
}

// ownerFailure is reconcile.Config.OnFailure: one log line per change of
// an owner's state (not per retry).
func (a *Agent) ownerFailure(o reconcile.Owner, f *reconcile.Failure) {
	if f == nil {
		a.log.Info("flows installed again after OVS refused them, or their owner is gone", "owner", o)
		return
	}
	a.log.Warn("OVS refused a flow: its owner's flows are kept out of OVS and retried with backoff", "owner", o,
		"flow", f.Flow, "reason", f.Reason, "retries", f.Retries, "next_retry", f.NextRetry.Format(time.RFC3339))
}

// releaseRestoreWait clears other_config:flow-restore-wait once the
// pipeline is in OVS. Whoever restarts ovs-vswitchd may set it first: the
// new ovs-vswitchd then keeps the datapath's flows and handles no packet
// until it is cleared, which the controller that restored the flow tables
// does; here that is the agent, after its Sync. If reading or clearing
// fails, the next drift check (every VerifyEvery) tries again.
func (a *Agent) releaseRestoreWait(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	on, err := a.db.FlowRestoreWait(ctx)
	if err == nil && on {
		if err = a.db.SetFlowRestoreWait(ctx, false); err == nil {
			a.log.Info("flow-restore-wait cleared: the pipeline is in OVS, ovs-vswitchd handles packets again")
		}
	}
	a.restoreWait.Store(err != nil)
	if err != nil {
		a.log.Warn("could not check or clear flow-restore-wait; retrying", "err", err)
	}
}

// Status is a snapshot for metrics, health and debugging.
type Status struct {
	Ready     bool
	OVSDB     ovsdb.Stats
	OpenFlow  openflow.State
	Reconcile reconcile.Stats
	Rejects   map[string]uint64
	Repairs   uint64 // flows fixed by drift checks and by repairs of drift OVS reported
	Endpoints int    // programmed local endpoints
	// FlowMonitor: OVS reports flow changes on the current connection
	// (false: drift is found by the periodic full comparison alone).
	FlowMonitor bool
	// FlowMonitorPauses: how often OVS paused its reports (a mass change
	// outran the connection; a full Sync followed).
	FlowMonitorPauses uint64
	// APIRequests counts the local API's requests by call and result.
	APIRequests map[APIRequest]uint64
	// Gateways is the gateways' keeper's state (gateway.go).
	Gateways gateway.Stats
	// Addresses is what the host's allocator holds, per network.
	Addresses map[string]ipam.NetworkStats
}

// Status returns the agent's current status. It never waits for OVS or
// for a Sync in progress (see reconcile.Reconciler.Stats).
func (a *Agent) Status() Status {
	a.mu.Lock()
	rejects := make(map[string]uint64, len(a.rejects))
	for k, v := range a.rejects {
		rejects[k] = v
	}
	repairs := a.repairs
	a.mu.Unlock()
	a.model.epMu.Lock()
	eps := len(a.model.endpoints)
	a.model.epMu.Unlock()
	return Status{Ready: a.ready.Load(), OVSDB: a.db.Stats(), OpenFlow: a.of.State(), Reconcile: a.rec.Stats(),
		Rejects: rejects, Repairs: repairs, Endpoints: eps, FlowMonitor: a.monitored.Load() && a.Conn() != nil,
		FlowMonitorPauses: a.drift.pauseCount(), APIRequests: a.apiCounts(), Gateways: a.gatewayStats(),
		Addresses: a.ipam.Stats()}
}

// Ready reports whether the whole pipeline is in OVS (on the current
// connection, after its first Sync). It reads one flag: /readyz.
func (a *Agent) Ready() bool { return a.ready.Load() }

// FirstReady is closed when the agent is first ready (its first Sync done):
// for what can wait until then, e.g. the metrics' reads of Open vSwitch.
func (a *Agent) FirstReady() <-chan struct{} { return a.readyCh }

// Desired returns the flows the agent wants in OVS, grouped by owner with a
// readable name (for /debug/flows and tests). The result is shared until
// the model changes: read it, do not modify it.
func (a *Agent) Desired() []Owned { return a.model.desired() }

// State returns the desired state as a pipeline.State, every remote
// endpoint of the cluster view included (O(view): for tests).
func (a *Agent) State() pipeline.State { return a.model.state(true) }

// LocalState is State without the remote endpoints: networks, hosts and
// this host's endpoints, what /debug requests read (O(local), not O(view)).
func (a *Agent) LocalState() pipeline.State { return a.model.state(false) }

// DesiredRevision changes whenever Desired's flows change: readers that
// derive something from them (/debug/trace's model) keep it per revision.
// Read it before Desired.
func (a *Agent) DesiredRevision() uint64 { return a.model.desiredRevision() }

// Conn returns the current OpenFlow connection, or nil.
func (a *Agent) Conn() *openflow.Conn {
	if c := a.conn.Load(); c != nil && c.Err() == nil {
		return c
	}
	return nil
}

// Interfaces returns the interfaces on the bridge as OVSDB reports them.
func (a *Agent) Interfaces() []ovsdb.Interface { return a.db.Interfaces() }

// Endpoint returns the programmed endpoint on an OVS port, if any.
func (a *Agent) Endpoint(port string) (pipeline.Endpoint, bool) {
	a.model.epMu.Lock()
	defer a.model.epMu.Unlock()
	e, ok := a.model.endpoints[port]
	return e, ok
}
