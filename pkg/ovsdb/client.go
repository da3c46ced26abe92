package ovsdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/ovn-org/libovsdb/cache"
	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"
)

// errConnectionLost ends a session whose server went away.
var errConnectionLost = errors.New("connection to ovsdb lost")

// Stats describes the connection and the repairs, for metrics.
type Stats struct {
	Connected       bool
	Connects        uint64 // successful connections, the first included
	Reconnects      uint64 // successful connections after the first
	Disconnects     uint64 // connections lost (not counting Close)
	ConnectFailures uint64 // connection attempts that failed
	Repairs         uint64 // transactions that put the bridge or tunnel back
	RepairFailures  uint64
	IDWrites        uint64 // interface rows whose external_ids SetExternalIDs changed
	IDWriteFailures uint64 // SetExternalIDs transactions that failed (retried)
	LastError       error  // last connection, repair or write error, nil if none
}

// Client keeps the integration bridge and reports its interfaces. All
// methods are safe for concurrent use.
type Client struct {
	cfg     Config
	log     *slog.Logger
	logr    logr.Logger
	dbModel model.ClientDBModel
	dirty   chan struct{} // the cache changed: resync (capacity 1)
	closing chan struct{}
	running sync.WaitGroup
	opMu    sync.Mutex   // serialises this client's write transactions
	changes changes      // rows changed since the last sync
	index   *bridgeIndex // the bridge's ports and interfaces; serve's goroutine only
	ids     idWriter     // external_ids writes waiting (SetExternalIDs)

	mu         sync.Mutex
	conn       client.Client // nil while not connected
	up         chan struct{} // closed when conn is set
	runActive  bool
	closed     bool
	closeOnce  sync.Once
	wantBridge bool                 // EnsureBridge was called: keep the bridge
	tunnel     *TunnelSpec          // EnsureTunnelPort was called: keep the port
	bridgeOK   bool                 // the bridge was as configured once: later writes are repairs
	tunnelOK   bool                 // same for the tunnel port
	known      map[string]Interface // interfaces on the bridge by UUID
	subs       map[*Subscription]struct{}
	stats      Stats
	synced     chan struct{} // closed after the first read of the bridge's interfaces
	syncedOnce sync.Once
	// monitored is closed after the monitor's first full read (Monitored).
	monitored     chan struct{}
	monitoredOnce sync.Once
	// snapRestore is flow-restore-wait as the snapshot read it, until the
	// first connection (FlowRestoreWait answers from it before; nil: none).
	snapRestore *bool
}

// New checks cfg and returns a Client; Run connects it.
func New(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m, err := newDBModel()
	if err != nil {
		return nil, fmt.Errorf("ovsdb model: %w", err)
	}
	log := cfg.Logger.With("component", "ovsdb", "bridge", cfg.Bridge.Name)
	return &Client{
		cfg:       cfg,
		log:       log,
		logr:      newLogr(log),
		dbModel:   m,
		dirty:     make(chan struct{}, 1),
		closing:   make(chan struct{}),
		up:        make(chan struct{}),
		known:     map[string]Interface{},
		subs:      map[*Subscription]struct{}{},
		synced:    make(chan struct{}),
		monitored: make(chan struct{}),
		ids:       idWriter{kick: make(chan struct{}, 1)},
	}, nil
}

// Config returns the configuration in use, defaults filled in.
func (c *Client) Config() Config { return c.cfg }

// Start runs the client in the background (Run) for a short-lived user such
// as a command or a plugin call; stop cancels it, closes the client and
// returns once Run has. ctx's cancellation does not stop it: only stop does.
func (c *Client) Start(ctx context.Context) (stop func()) {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(runCtx)
	}()
	return func() {
		cancel()
		c.Close()
		<-done
	}
}

// Run connects to the server and keeps connecting, with backoff, until ctx
// is done or Close is called. It returns nil then, or an error at once when
// the client is closed or already running.
func (c *Client) Run(ctx context.Context) error {
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return ErrClosed
	case c.runActive:
		c.mu.Unlock()
		return errors.New("ovsdb client already running")
	}
	c.runActive = true
	c.running.Add(1)
	c.mu.Unlock()
	defer c.running.Done()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-c.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	var writer sync.WaitGroup
	writer.Add(1)
	go func() { defer writer.Done(); c.writeIDs(ctx) }()
	defer writer.Wait()
	c.connectLoop(ctx)
	return nil
}

// Preload reads the bridge's interfaces from a snapshot (snapshot.go: one
// transaction on a connection of its own, decoded without libovsdb),
// publishes them and marks the client Synced, before Run: a caller can
// act on the interfaces as soon as ovsdb-server has answered, and start
// Run (libovsdb's monitor, whose first full read publishes whatever
// changed since) when it suits it. It reports whether the bridge was
// there. On failure nothing is published: Synced then waits for Run's
// first read, as without a snapshot. Not with OnlyPorts (an error).
func (c *Client) Preload(ctx context.Context) (bridge bool, err error) {
	c.mu.Lock()
	started := c.runActive || c.closed
	c.mu.Unlock()
	if started || len(c.cfg.OnlyPorts) > 0 {
		return false, errors.New("ovsdb: Preload must come before Run, and not with OnlyPorts")
	}
	start := time.Now()
	r, err := readSnapshot(ctx, c.cfg.Endpoint)
	if err != nil {
		return false, err
	}
	c.index = newBridgeIndex(&r, c.cfg.Bridge.Name)
	ifaces := bridgeInterfacesOf(&r, c.cfg.Bridge.Name, ownInterface) // the snapshot's maps are ours
	if len(r.root) > 0 {
		restore := r.root[0].OtherConfig[keyRestore] == "true"
		c.mu.Lock()
		if c.conn == nil {
			c.snapRestore = &restore
		}
		c.mu.Unlock()
	}
	c.publish(ifaces)
	c.syncedOnce.Do(func() { close(c.synced) })
	c.log.Info("ovsdb snapshot read", "interfaces", len(ifaces), "took", time.Since(start))
	return r.bridge(c.cfg.Bridge.Name) != nil, nil
}

func (c *Client) connectLoop(ctx context.Context) {
	failures := 0
	for {
		connected, err := c.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if connected {
			failures = 0
			c.note(func(s *Stats) { s.Disconnects++; s.LastError = err })
			c.log.Warn("ovsdb connection ended, reconnecting", "err", err)
		} else {
			failures++
			c.note(func(s *Stats) { s.ConnectFailures++; s.LastError = err })
			if failures == 1 || failures%10 == 0 {
				c.log.Warn("ovsdb connection failed, retrying", "err", err, "failures", failures)
			}
		}
		select { // at least MinBackoff, also after a connection that ended
		case <-ctx.Done():
			return
		case <-time.After(backoffDelay(max(failures, 1), c.cfg.MinBackoff, c.cfg.MaxBackoff)):
		}
	}
}

// session makes one libovsdb client, connects it, monitors the tables and
// serves until the connection ends. It reports whether it got connected.
func (c *Client) session(ctx context.Context) (bool, error) {
	cl, err := client.NewOVSDBClient(c.dbModel, client.WithEndpoint(c.cfg.Endpoint), client.WithLogger(&c.logr))
	if err != nil {
		return false, fmt.Errorf("ovsdb client for %s: %w", c.cfg.Endpoint, err)
	}
	sctx, cancel := context.WithCancel(ctx)
	lost := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // libovsdb notifies a disconnect without blocking: always listen
		defer wg.Done()
		select {
		case <-cl.DisconnectNotify():
			close(lost)
		case <-sctx.Done():
		}
	}()
	defer func() {
		cancel()
		cl.Close()
		wg.Wait()
	}()
	if err := c.connect(sctx, cl); err != nil {
		return false, err
	}
	c.setConn(cl)
	defer c.clearConn()
	c.kick()
	return true, c.serve(sctx, cl, lost)
}

func (c *Client) connect(ctx context.Context, cl client.Client) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout)
	defer cancel()
	if err := cl.Connect(ctx); err != nil {
		return fmt.Errorf("ovsdb connect: %w", err)
	}
	c.changes.setFull()
	mark := func(_ string, m model.Model) { c.changes.mark(m); c.kick() }
	cl.Cache().AddEventHandler(&cache.EventHandlerFuncs{
		AddFunc:    mark,
		DeleteFunc: mark,
		UpdateFunc: func(t string, _, n model.Model) { mark(t, n) },
	})
	if _, err := cl.Monitor(ctx, newMonitor(cl, c.cfg.OnlyPorts, c.cfg.Bridge.Name)); err != nil {
		return fmt.Errorf("ovsdb monitor: %w", err)
	}
	return nil
}

// newMonitor watches only the columns the models hold: monitoring all of
// them would fail on columns missing from the models and bring the
// statistics updates vswitchd writes every few seconds.
func newMonitor(cl client.Client, only []string, bridge string) *client.Monitor {
	o, b, p, i, ft := &ovsRow{}, &bridgeRow{}, &portRow{}, &ifaceRow{}, &flowTableRow{}
	portFields := []any{&p.Name, &p.Interfaces}
	ifaceFields := []any{&i.Name, &i.Type, &i.Options, &i.ExternalIDs, &i.OFPort,
		&i.OFPortRequest, &i.MTURequest, &i.MACInUse, &i.Error}
	ports, ifaces := client.WithTable(p, portFields...), client.WithTable(i, ifaceFields...)
	if len(only) > 0 {
		// monitor_cond: a row is sent when any of the clauses holds.
		var pc, ic []model.Condition
		for _, name := range append([]string{bridge}, only...) {
			pc = append(pc, model.Condition{Field: &p.Name, Function: ovsdb.ConditionEqual, Value: name})
			ic = append(ic, model.Condition{Field: &i.Name, Function: ovsdb.ConditionEqual, Value: name})
		}
		ports, ifaces = client.WithConditionalTable(p, pc, portFields...), client.WithConditionalTable(i, ic, ifaceFields...)
	}
	return cl.NewMonitor(
		client.WithTable(o, &o.Bridges, &o.OtherConfig),
		client.WithTable(b, &b.Name, &b.Ports, &b.FailMode, &b.Protocols, &b.DatapathType, &b.OtherConfig, &b.FlowTables),
		client.WithTable(ft, &ft.Name),
		ports, ifaces,
	)
}

// serve resyncs on every cache change and probes the server until the
// connection is lost or ctx ends.
func (c *Client) serve(ctx context.Context, cl client.Client, lost <-chan struct{}) error {
	var probe <-chan time.Time
	if c.cfg.ProbeInterval > 0 {
		t := time.NewTicker(c.cfg.ProbeInterval)
		defer t.Stop()
		probe = t.C
	}
	// A full read now and then: libovsdb drops cache events when its
	// buffer overflows, and the incremental path would miss those rows.
	full := time.NewTicker(fullResyncEvery)
	defer full.Stop()
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-lost:
			return errConnectionLost
		case <-full.C:
			c.changes.setFull()
		case <-probe:
			pctx, cancel := context.WithTimeout(ctx, c.cfg.ProbeTimeout)
			start := time.Now()
			err := cl.Echo(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("ovsdb echo (after %v): %w", time.Since(start), err)
			}
			continue
		case <-c.dirty:
		case <-retry:
		}
		retry = nil
		if err := c.sync(ctx, cl); err != nil && ctx.Err() == nil {
			c.log.Warn("ovsdb repair failed, retrying", "err", err, "in", c.cfg.RepairRetry)
			c.note(func(s *Stats) { s.RepairFailures++; s.LastError = err })
			retry = time.After(c.cfg.RepairRetry)
		}
	}
}

// fullResyncEvery bounds how long a change missed by the incremental path
// (a dropped cache event) can go unnoticed.
const fullResyncEvery = time.Minute

func (c *Client) kick() {
	select {
	case c.dirty <- struct{}{}:
	default:
	}
}

func (c *Client) setConn(cl client.Client) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn = cl
	c.snapRestore = nil // the cache has it from now on
	close(c.up)
	c.stats.Connected = true
	c.stats.Connects++
	if c.stats.Connects > 1 {
		c.stats.Reconnects++
	}
	c.log.Info("ovsdb connected", "endpoint", c.cfg.Endpoint, "connects", c.stats.Connects)
}

func (c *Client) clearConn() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn = nil
	c.up = make(chan struct{})
	c.stats.Connected = false
}

func (c *Client) note(f func(*Stats)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.stats)
}

// Stats returns the connection state and counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// waitConn returns the current connection, waiting for one until ctx ends.
func (c *Client) waitConn(ctx context.Context) (client.Client, error) {
	for {
		c.mu.Lock()
		cl, up, closed := c.conn, c.up, c.closed
		c.mu.Unlock()
		switch {
		case closed:
			return nil, ErrClosed
		case cl != nil:
			return cl, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrNotConnected, ctx.Err())
		case <-c.closing:
		case <-up:
		}
	}
}

// withConn runs f on a connection; when the connection drops under it, f
// runs again on the next one (f must be idempotent) until ctx ends.
func (c *Client) withConn(ctx context.Context, f func(client.Client) error) error {
	for {
		cl, err := c.waitConn(ctx)
		if err != nil {
			return err
		}
		err = f(cl)
		if err == nil || !errors.Is(err, client.ErrNotConnected) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrNotConnected, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// publish diffs the interfaces on the bridge against the last set and hands
// the events to every subscriber.
func (c *Client) publish(now map[string]Interface) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.subs) == 0 { // nobody to tell (Preload): no diff
		c.known = now
		return
	}
	evs := diffInterfaces(c.known, now)
	c.known = now
	for s := range c.subs {
		s.push(evs)
	}
}

// publishDelta is publish for the interfaces with UUIDs in dirty: now holds
// those still on the bridge; since is when the first change was reported.
func (c *Client) publishDelta(dirty map[string]struct{}, now map[string]Interface, since time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := make(map[string]Interface, len(dirty))
	for u := range dirty {
		if i, ok := c.known[u]; ok {
			old[u] = i
		}
		if i, ok := now[u]; ok {
			c.known[u] = i
		} else {
			delete(c.known, u)
		}
	}
	evs := diffInterfaces(old, now)
	for i := range evs {
		evs[i].Received = since
	}
	for s := range c.subs {
		s.push(evs)
	}
}

// Synced is closed once the interfaces on the bridge have been read from
// the server for the first time. Before that, Interfaces and a Subscribe
// snapshot are empty because nothing is known yet, not because the bridge
// has no interfaces: a caller that acts on their absence (removes flows)
// must wait for it.
func (c *Client) Synced() <-chan struct{} { return c.synced }

// Monitored is closed once the monitor (Run) has read the bridge's rows
// for the first time. Without Preload it comes with Synced; after one, it
// marks the end of the monitor's initial load.
func (c *Client) Monitored() <-chan struct{} { return c.monitored }

// Interfaces returns the interfaces on the bridge as last seen, by name.
func (c *Client) Interfaces() []Interface {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snapshotLocked()
}

// Interface returns the interface named name on the bridge as last seen
// (the state the next subscription batch carries), if any.
func (c *Client) Interface(name string) (Interface, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, i := range c.known {
		if i.Name == name {
			return i.clone(), true
		}
	}
	return Interface{}, false
}

// InterfacesWhere returns the interfaces on the bridge that keep accepts,
// as Interfaces does (copies, by name): a caller that needs a few of many
// interfaces, often, need not copy them all.
func (c *Client) InterfacesWhere(keep func(*Interface) bool) []Interface {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Interface
	for _, i := range c.known {
		if keep(&i) {
			out = append(out, i.clone())
		}
	}
	slices.SortFunc(out, func(a, b Interface) int { return compareIfaces(&a, &b) })
	return out
}

func (c *Client) snapshotLocked() []Interface {
	out := make([]Interface, 0, len(c.known))
	for _, i := range c.known {
		out = append(out, i.clone())
	}
	slices.SortFunc(out, func(a, b Interface) int { return compareIfaces(&a, &b) })
	return out
}

// Subscribe returns a subscription whose first batch is every interface now
// on the bridge as Added (see Synced), then every change. Close it when done.
func (c *Client) Subscribe() *Subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		s := newSubscription(nil, nil)
		s.Close()
		return s
	}
	var initial []InterfaceEvent
	for _, i := range c.snapshotLocked() {
		initial = append(initial, InterfaceEvent{Kind: Added, Interface: i})
	}
	s := newSubscription(c.unsubscribe, initial)
	c.subs[s] = struct{}{}
	return s
}

func (c *Client) unsubscribe(s *Subscription) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.subs, s)
}

// Close stops Run, drops the connection and closes every subscription. It
// returns when the client's goroutines have ended.
func (c *Client) Close() {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.closing)
	})
	c.running.Wait()
	c.mu.Lock()
	subs := c.subs
	c.subs = map[*Subscription]struct{}{}
	c.mu.Unlock()
	for s := range subs {
		s.Close()
	}
}
