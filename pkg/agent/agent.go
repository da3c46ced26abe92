package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	"github.com/ofctl-agent/ofctl-agent/pkg/ipam"
	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/pkg/reconcile"
)

// Config wires an Agent.
type Config struct {
	NodeName     string
	Bridge       ovsdb.BridgeConfig
	OVSDB        string // OVSDB endpoint
	OpenFlow     string // OpenFlow endpoint, e.g. unix:/var/run/openvswitch/br-int.mgmt
	TunnelPort   string // name of the flow-based GRE port
	TunnelOFPort int    // its ofport_request
	TunnelIP     netip.Addr
	Cluster      cluster.Source
	// VerifyEvery: how often OVS is compared in full with the desired flows
	// when it does not report flow changes (at least; longer when a Sync is
	// slow). Default 1s.
	VerifyEvery time.Duration
	// MonitoredVerifyEvery: the same while OVS's flow monitor reports
	// changes, which are repaired as they come: a safety net. Default 5m.
	MonitoredVerifyEvery time.Duration
	// AllRemoteFlows programs every remote endpoint of the cluster view
	// (etcd mode), not only those of the networks where this host has a
	// local endpoint (docs/etcd.md "Flows only where needed").
	AllRemoteFlows bool
	// NoFlowMonitor: do not ask OVS to report flow changes; drift is found
	// by the comparison every VerifyEvery alone.
	NoFlowMonitor bool
	EchoInterval  time.Duration
	DeadInterval  time.Duration
	Logger        *slog.Logger
	// OnReady is called once, after the first complete Sync (sd_notify).
	OnReady func()
	// OnApply, if set, is called after every batch of interface events
	// (metrics, benchmarks). It runs on the loop and must be quick.
	OnApply func(Applied)
	// OnSync, if set, is called after every full Sync (connect and drift
	// checks) with its result and duration, failed ones included. It runs
	// on the syncing goroutine and must be quick.
	OnSync func(reconcile.SyncResult, error)
	// Publisher, if set, tells the cluster about this host's endpoints
	// (the etcd backend). The agent runs it alongside the cluster source.
	Publisher Publisher
	// AllocationTTL: how long an address allocated through the local API
	// is held without a port claiming it; 0: ipam.DefaultTTL.
	AllocationTTL time.Duration
	// NAT, if set, keeps the host's packet filter for the gateways (nat.go).
	NAT *NATConfig
	// Names, if set, gets the endpoints' DNS names (names.go).
	Names NameTable
	// DNS, if set, serves each network with a gateway here (dns.go); the
	// names are loaded before the first network is served.
	DNS DNS
	// Gateway, if set, makes and keeps this host's gateways (gateway.go).
	Gateway *GatewayConfig
}

// Publisher publishes the active local endpoints. PublishEndpoints gets
// all of them after every change, on the loop: it must not block.
type Publisher interface {
	Run(ctx context.Context) error
	PublishEndpoints(active []endpoint.Endpoint)
}

// Agent runs the control loop for one bridge.
type Agent struct {
	cfg Config
	log *slog.Logger
	db  *ovsdb.Client
	of  *openflow.Client
	rec *reconcile.Reconciler
	reg *endpoint.Registry // owned by the loop
	// badIfaces remembers the last problem reported per interface (loop-owned).
	badIfaces map[string]string
	// waiting says why a waiting endpoint waits: the conflict (loop-owned).
	waiting   map[string]string
	marks     *marks // the interfaces' status keys (loop-owned)
	toPublish bool   // active endpoints changed since the last publish (loop-owned)
	model     *model
	ipam      *ipam.Allocator // the host's addresses, fed by the loop
	interest  *interest       // the networks in use, told to a scoped source (interest.go)
	nat       *natKeeper      // the gateways' packet filter (nil: none); loop-owned
	names     names           // what Config.Names was given of the views (loop-owned)
	dns       dnsState        // what Config.DNS serves (loop-owned)
	gw        *gateways       // this host's gateways (nil: none)

	conn   atomic.Pointer[openflow.Conn]
	synced atomic.Pointer[openflow.Conn] // conn once its first Sync is done: flushes may go
	// unsynced: conn whose first Sync OVS's refusals cut short (onConnect):
	// the drift check syncs it again.
	unsynced atomic.Pointer[openflow.Conn]
	// restoreWait: flow-restore-wait could not be checked or cleared after
	// the last Sync (loop.go releaseRestoreWait): retry.
	restoreWait atomic.Bool
	ready       atomic.Bool
	readyOnce   sync.Once
	memory      releaser                   // returns memory to the OS after large changes
	monitored   atomic.Bool                // OVS reports flow changes on the current connection
	drift       *driftQueue                // what it reported, until repaired (monitor.go)
	lastFull    atomic.Int64               // unix nanoseconds of the last successful full Sync
	loaded      chan struct{}              // closed once Run has loaded the model
	readyCh     chan struct{}              // closed when the agent is first ready
	pre         atomic.Pointer[prefetched] // the start-up flow dump (prefetch.go)
	sw          ofSwitch                   // the reconciler's seam to OVS

	mu          sync.Mutex
	rejects     map[string]uint64
	repairs     uint64
	apiRequests map[APIRequest]uint64
}

// New checks cfg and builds the agent; Run starts it.
func New(cfg Config) (*Agent, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Cluster == nil || cfg.NodeName == "" || cfg.OVSDB == "" || cfg.OpenFlow == "" || cfg.TunnelPort == "" {
		return nil, errors.New("agent: cluster source, node name, ovsdb, openflow and tunnel port are required")
	}
	if cfg.VerifyEvery <= 0 {
		cfg.VerifyEvery = time.Second
	}
	if cfg.MonitoredVerifyEvery <= 0 {
		cfg.MonitoredVerifyEvery = 5 * time.Minute
	}
	maxTable := uint8(len(pipeline.Tables()) - 1)
	a := &Agent{cfg: cfg, log: cfg.Logger, reg: endpoint.NewRegistry(), badIfaces: map[string]string{}, rejects: map[string]uint64{},
		waiting: map[string]string{}, marks: newMarks(), drift: newDriftQueue(maxTable), apiRequests: map[APIRequest]uint64{},
		loaded: make(chan struct{}), readyCh: make(chan struct{})}
	var err error
	if a.ipam, err = ipam.New(ipam.Config{Node: cfg.NodeName, TTL: cfg.AllocationTTL, OnExpire: a.allocationExpired}); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.sw = ofSwitch{conn: a.conn.Load, maxTable: maxTable}
	a.rec = reconcile.New(reconcile.Config{
		Switch:     a.sw,
		Regenerate: func(o reconcile.Owner) []flow.Flow { return a.model.regenerate(o) },
		Rank:       ownerRank,
		OnFailure:  a.ownerFailure,
		// Owners given with SetLater: errors found as a Flush or Sync
		// builds their flows (it holds the reconciler's lock, not the model's).
		OnLaterErrors: func(o reconcile.Owner, errs []error) { a.model.laterErrors(o, errs) },
	})
	a.model = newModel(cfg.NodeName, a.rec, a.reject)
	a.model.scoped = !cfg.AllRemoteFlows
	a.interest = newInterest(cfg.Cluster)
	if cfg.Bridge.TableNames == nil { // name the pipeline's tables in OVS (ovs-ofctl --names)
		cfg.Bridge.TableNames = map[int]string{}
		for _, t := range pipeline.Tables() {
			cfg.Bridge.TableNames[int(t.ID)] = t.Name
		}
	}
	db, err := ovsdb.New(ovsdb.Config{Endpoint: cfg.OVSDB, Bridge: cfg.Bridge, NodeName: cfg.NodeName, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.db = db
	of, err := openflow.NewClient(openflow.ClientConfig{
		Conn: openflow.Config{Addr: cfg.OpenFlow, EchoInterval: cfg.EchoInterval, DeadInterval: cfg.DeadInterval, Logger: cfg.Logger},
		// The switch is local: a failed dial costs next to nothing, and
		// after an ovs-vswitchd restart every moment waited is spent with
		// an empty pipeline. Retry at least 4 times a second. A failing
		// sync (the hook) is retried at HookBackoff's default pace, from
		// 100 ms doubling to 10 s: each try dumps every flow.
		Backoff:   openflow.Backoff{Max: 250 * time.Millisecond},
		OnConnect: a.onConnect,
		Logger:    cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	a.of = of
	if cfg.NAT != nil {
		if err := a.newNATKeeper(cfg.NAT); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
	}
	if cfg.Gateway != nil {
		if err := a.newGateways(*cfg.Gateway); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
	}
	return a, nil
}

// RejectKinds are the kinds of rejected input the agent reports: an OVSDB
// interface with bad external_ids or no usable ofport, an IP/MAC conflict
// between endpoints, an endpoint whose network or subnet does not fit the
// cluster view, a flow the reconciler refused, an invalid cluster file. The
// etcd backend adds "etcd-record" (a record that does not parse) and
// "etcd-old-layout" (a host publishing in the key layout of earlier
// versions) when it first reports one; its lost conflicts count as
// "conflict". "agent-api" is a malformed request on the local API,
// "docker-plugin" a call of dockerd the Docker plugin refused.
// "publish" is a published port the packet filter refuses (a host port
// another endpoint holds, a network without a gateway here), "nat" another
// item it refuses (a NAT network overlapping the underlay). "dns" is a
// network whose resolver could not open its sockets (retried). "gateway"
// a gateway address that cannot be (outside the host's range...).
var RejectKinds = []string{"interface", "conflict", "endpoint", "flow", "cluster", "agent-api", "docker-plugin", "publish", "nat", "dns", "gateway"}

// Reject reports bad input from outside the agent (the cluster source).
func (a *Agent) Reject(kind string, err error) { a.reject(kind, err) }

// reject reports bad input: a log line and a counter; the item is ignored.
func (a *Agent) reject(kind string, err error) {
	a.mu.Lock()
	a.rejects[kind]++
	a.mu.Unlock()
	a.log.Warn("rejected input", "kind", kind, "err", err)
}

// Run keeps the bridge programmed until ctx ends. It returns only when ctx
// is done (nil) or on a configuration error: transient faults are retried.
// Flows are left in place when it returns.
func (a *Agent) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Add(1)
	go func() { defer wg.Done(); a.runCluster(ctx) }()
	if a.cfg.Publisher != nil {
		wg.Add(1)
		go func() { defer wg.Done(); _ = a.cfg.Publisher.Run(ctx) }()
	}
	defer a.db.Close()

	// OpenFlow connects at once (until the bridge exists the dial fails and
	// is retried), so that the flow dump overlaps the OVSDB read and the
	// model's build (prefetch.go).
	wg.Add(1)
	go func() { defer wg.Done(); _ = a.of.Run(ctx) }()
	a.startOVSDB(ctx, &wg)
	// Programming before the interfaces are known would remove every
	// endpoint's flows from a bridge that has them (a restart).
	select {
	case <-a.db.Synced():
	case <-ctx.Done():
		return nil
	}
	sub := a.db.Subscribe()
	defer sub.Close()
	view, err := a.firstView(ctx)
	if err != nil {
		return nil
	}
	select {
	case snapshot := <-sub.C():
		for _, ev := range holdersFirst(snapshot) {
			a.handleInterface(ev)
		}
	case <-ctx.Done():
		return nil
	}
	// A new tunnel port gets its number while the view loads: the snapshot
	// predates it. Taken now, the first Sync installs every flow in one
	// bundle instead of the flows without the port, and the rest after a
	// second build when the event comes (it then changes nothing).
	a.knownTunnelPort()
	active := a.reg.Active()
	view = a.startInterest(ctx, view, active) // a scoped source: the networks in use loaded first
	a.model.setView(view, active)
	a.ipam.SetView(view, a.hostGateways(view)) // every port is in: allocations may start
	a.allocatorView(view)
	a.applyViewNames(view)
	if a.cfg.Names != nil { // both sources are in: a miss is NXDOMAIN from now on
		a.cfg.Names.SetSynced(true)
	}
	a.applyDNS(view)
	// Planned from the view: gateway ports no longer wanted may go.
	if a.gw != nil {
		wg.Add(1)
		go func() { defer wg.Done(); a.runGateways(ctx) }()
	}
	a.publish()
	if a.nat != nil { // the table as the model says, before the first flows (a restart changes nothing)
		a.applyNAT(view)
		wg.Add(1)
		go func() { defer wg.Done(); a.runNAT(ctx) }()
	}
	a.log.Info("model loaded", "endpoints", len(active), "networks", len(view.Networks), "hosts", len(view.Hosts))
	close(a.loaded)
	a.loop(ctx, sub)
	return nil
}

// knownTunnelPort gives the model the tunnel port's number if OVSDB has
// it by now (before the model is built: no rebuild).
func (a *Agent) knownTunnelPort() {
	t, ok := a.db.Interface(a.cfg.TunnelPort)
	if !ok || t.OFPort <= 0 {
		return
	}
	if a.model.setTunnelPort(uint32(t.OFPort), nil) {
		a.log.Info("tunnel port", "name", t.Name, "ofport", t.OFPort)
	}
}

// monitorDelay bounds how long, on a start where the bridge exists, the
// OVSDB monitor waits for the agent to be ready (startOVSDB).
const monitorDelay = 2 * time.Second

// startOVSDB reads the interfaces from one snapshot (pkg/ovsdb Preload)
// and starts the OVSDB client and the keeping of the bridge and tunnel
// port. When the bridge is there (a restart) the client's monitor, whose
// decoding costs as much CPU as the rest of the start at 10,000 ports,
// starts once the pipeline is verified (or after monitorDelay): the bridge,
// its tunnel port and their repair wait for it that long. On a first start,
// with flow-restore-wait set (the Sync's end clears it), or without a
// snapshot, everything starts at once and Synced waits for the monitor's
// first read.
func (a *Agent) startOVSDB(ctx context.Context, wg *sync.WaitGroup) {
	start := func() {
		wg.Add(2)
		go func() { defer wg.Done(); _ = a.db.Run(ctx) }()
		go func() { defer wg.Done(); _ = a.ensureOVSDB(ctx) }()
	}
	bridge, err := a.db.Preload(ctx)
	if err != nil && ctx.Err() == nil {
		a.log.Warn("ovsdb snapshot failed; waiting for the monitor", "err", err)
	}
	if err != nil || !bridge {
		start()
		return
	}
	if on, err := a.db.FlowRestoreWait(ctx); err != nil || on { // as the snapshot read it
		start() // clearing it after the first Sync needs the client
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-a.readyCh:
		case <-time.After(monitorDelay):
		case <-ctx.Done():
			return
		}
		start()
		select {
		case <-a.db.Monitored(): // its initial load, after ready: give the memory it used back
			a.memory.after(bigChange)
		case <-ctx.Done():
		}
	}()
}

// holdersFirst orders the interfaces found at start-up so that those whose
// installed mark shows they held their address come first (in name order,
// then the others in name order): the registry lets the first claimant of
// an address keep it, and the holder must keep it across a restart.
func holdersFirst(evs []ovsdb.InterfaceEvent) []ovsdb.InterfaceEvent {
	out := make([]ovsdb.InterfaceEvent, 0, len(evs))
	for _, held := range []bool{true, false} {
		for _, ev := range evs {
			if endpoint.HeldAddress(ev.Interface.ExternalIDs) == held {
				out = append(out, ev)
			}
		}
	}
	return out
}

func (a *Agent) runCluster(ctx context.Context) {
	if err := a.cfg.Cluster.Run(ctx); err != nil && ctx.Err() == nil {
		a.log.Error("cluster view source stopped", "err", err)
	}
}

// ensureOVSDB puts the bridge and tunnel port in place, retrying with
// backoff while OVSDB is unreachable.
func (a *Agent) ensureOVSDB(ctx context.Context) error {
	spec := ovsdb.TunnelSpec{Name: a.cfg.TunnelPort, OFPort: a.cfg.TunnelOFPort, LocalIP: a.cfg.TunnelIP}
	return retry(ctx, a.log, "ensure bridge and tunnel port", func(ctx context.Context) error {
		if err := a.db.EnsureBridge(ctx); err != nil {
			return err
		}
		return a.db.EnsureTunnelPort(ctx, spec)
	})
}

// firstView waits for a valid cluster view; nothing is programmed before.
func (a *Agent) firstView(ctx context.Context) (cluster.View, error) {
	if v, ok := a.cfg.Cluster.Current(); ok {
		return v, nil
	}
	a.log.Warn("waiting for a valid cluster view")
	select {
	case v := <-a.cfg.Cluster.Updates():
		return v, nil
	case <-ctx.Done():
		return cluster.View{}, ctx.Err()
	}
}

// retry runs f until it succeeds or ctx ends, backing off up to 5s.
func retry(ctx context.Context, log *slog.Logger, what string, f func(context.Context) error) error {
	delay := 100 * time.Millisecond
	for {
		attempt, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := f(attempt)
		cancel()
		if err == nil {
			return nil
		}
		log.Warn(what+" failed, retrying", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}
