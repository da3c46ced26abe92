package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
)

// DefaultLeaseTTL is how long a host's records outlive its agent.
const DefaultLeaseTTL = 10 * time.Second

// maxTxnOps stays under etcd's default --max-txn-ops (128).
const maxTxnOps = 100

// copiesDropSpread spreads over time the deletion of the host layout's
// copies once no host needs them: each host waits a delay of its own, up
// to this, derived from its name, so that 1,000 hosts do not all delete
// theirs (and every agent receive every deletion) at one moment; an old
// agent that returns meanwhile finds them still there.
const copiesDropSpread = 30 * time.Second

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	Client   *clientv3.Client
	Prefix   string // default DefaultPrefix
	Host     string // this host's name
	TunnelIP netip.Addr
	TTL      time.Duration // lease TTL, default DefaultLeaseTTL; etcd raises values below its minimum
	Logger   *slog.Logger
}

// PublisherState is the publisher's progress, for metrics and tests.
type PublisherState struct {
	Lease     clientv3.LeaseID // 0 while none is held
	Published int              // keys written under the lease
	Pending   bool             // the desired records are not all written
	Grants    uint64           // leases granted (more than one: a lease was lost)
	Failures  uint64           // failed writes (retried)
	// ForeignWrites counts changes to this host's keys that this agent did
	// not make (puts and deletes, each key once); each is restored.
	ForeignWrites uint64
}

// Publisher writes this host's record under its own prefix (hosts/<host>/)
// and its local endpoints under its claim prefix of each network
// (claims/<network>/<host>/), bound to a lease it keeps alive: when
// the agent dies the records vanish after the TTL. It retries until etcd
// takes the records, and re-grants and re-writes everything when the lease
// is lost. It does not revoke the lease when stopped, so that a restarting
// agent does not make every other host drop and re-add its endpoints.
//
// It also watches those prefixes (guard.go): a change there that it did
// not make is logged, counted (State().ForeignWrites) and undone.
//
// Rolling upgrades from the host layout: agents of the previous version
// read claims under hosts/<host>/endpoints/<network>/<ip> alone. While
// another host is one of those (SetHostLayoutReaders), every claim is
// also written there, a copy under this host's prefix (after the claims
// layout's keys); once none is left, the copies are deleted after a
// delay of this host's (up to copiesDropSpread), unless one returns. Until the
// first SetHostLayoutReaders, copies found at start (an earlier run's, or
// the previous version's claims) are kept, written again under this
// run's lease, and no new ones are made. Claims of the host layout no
// longer wanted are deleted in the transactions that write the host
// prefix, after the claims layout's replacements.
type Publisher struct {
	cfg     PublisherConfig
	keys    keys
	log     *slog.Logger
	kick    chan struct{}
	running atomic.Bool

	mu      sync.Mutex
	desired map[string][]byte // key -> value
	gen     uint64            // changes of desired (or of the copies wanted)
	// readers are the other hosts that read the host layout alone
	// (SetHostLayoutReaders); readersKnown: they were set once.
	readers      []string
	readersKnown bool
	// dropAt is when the copies are deleted, once no other host needs
	// them; zero: not scheduled. dropSpread is copiesDropSpread (tests
	// change it before Run).
	dropAt     time.Time
	dropSpread time.Duration
	state      PublisherState
	failing    bool // the last round failed

	// Owned by Run.
	lease clientv3.LeaseID
	// published is what this agent last wrote to each key of its prefix;
	// nil: the key holds something else (an earlier run's or a foreign
	// write) and must be written again, or deleted.
	published map[string][]byte
	guard     guard

	// afterGrant, if set (tests), runs when a lease is granted.
	afterGrant func(clientv3.LeaseID)
}

// NewPublisher checks cfg; Run writes.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	prefix, err := normalizePrefix(cfg.Prefix)
	switch {
	case err != nil:
		return nil, err
	case cfg.Client == nil:
		return nil, errors.New("etcd publisher: no client")
	case !cfg.TunnelIP.Is4():
		return nil, errors.New("etcd publisher: the host's tunnel IP is required")
	}
	if _, _, err := parseHost("", cfg.Host, EncodeHost(cfg.TunnelIP)); err != nil {
		return nil, fmt.Errorf("etcd publisher: host %q: %w", cfg.Host, err)
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultLeaseTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	k := keys{prefix}
	p := &Publisher{cfg: cfg, keys: k, log: cfg.Logger.With("etcd_prefix", prefix), kick: make(chan struct{}, 1),
		desired: map[string][]byte{k.host(cfg.Host): EncodeHost(cfg.TunnelIP)}, published: map[string][]byte{},
		dropSpread: copiesDropSpread}
	p.guard = newGuard()
	p.state.Pending = true
	return p, nil
}

// PublishEndpoints sets the local endpoints to publish (all of them, each
// time); the writing happens on Run's goroutine. It never blocks.
func (p *Publisher) PublishEndpoints(eps []endpoint.Endpoint) {
	want := make(map[string][]byte, len(eps)+1)
	want[p.keys.host(p.cfg.Host)] = EncodeHost(p.cfg.TunnelIP)
	for _, ep := range eps {
		if ep.Network == "" || strings.Contains(ep.Network, "/") || !ep.IP.Is4() {
			continue // no key can name it; the agent reports such endpoints itself
		}
		want[p.keys.endpoint(ep.Network, ep.IP, p.cfg.Host)] = EncodeNamedEndpoint(ep.MAC, ep.Name)
	}
	p.mu.Lock()
	p.desired = want
	p.gen++
	p.state.Pending = true
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// SetHostLayoutReaders sets the other hosts that read claims in the host
// layout alone (Config.OnHostLayoutReaders of the Source); this host's
// own name is left out (its record is the previous run's until written
// again). It never blocks.
func (p *Publisher) SetHostLayoutReaders(hosts []string) {
	hosts = slices.DeleteFunc(slices.Clone(hosts), func(h string) bool { return h == p.cfg.Host })
	p.mu.Lock()
	was, known := len(p.readers) > 0, p.readersKnown
	p.readers, p.readersKnown = hosts, true
	now := len(hosts) > 0
	if known && was == now {
		p.mu.Unlock()
		return
	}
	var wait time.Duration
	p.dropAt = time.Time{}
	if known && !now { // copies of every claim exist: deleted after a delay
		wait = p.dropDelay()
		p.dropAt = time.Now().Add(wait)
	}
	p.gen++
	p.state.Pending = true
	p.mu.Unlock()
	const shown = 5
	switch {
	case now:
		p.log.Info("etcd: hosts run an agent that reads the host layout alone; this host's claims are written "+
			"in both layouts until they are upgraded (docs/etcd.md, Upgrading from the host layout)",
			"hosts", hosts[:min(len(hosts), shown)], "count", len(hosts))
	case known:
		p.log.Info("etcd: every host reads the claims layout; this host's claims of the host layout are deleted soon",
			"in", wait.Round(time.Millisecond))
	}
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// dropDelay is this host's wait before it deletes its copies: a share of
// dropSpread set by its name (FNV-1a), so that hosts spread evenly.
func (p *Publisher) dropDelay() time.Duration {
	if p.dropSpread <= 0 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(p.cfg.Host))
	return time.Duration(uint64(h.Sum32()) * uint64(p.dropSpread) >> 32)
}

// copyMode returns whether the host layout's other readers are known and
// whether copies are needed: while another host reads that layout alone,
// or until the copies' deletion is due; due is how long until then.
func (p *Publisher) copyMode() (known, readers bool, due time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	due = time.Until(p.dropAt)
	return p.readersKnown, len(p.readers) > 0 || !p.dropAt.IsZero() && due > 0, due
}

// withCopies returns desired with the host layout's copy of each claim
// that needs one: all of them while another host reads the host layout
// alone; before that is known, those whose key exists already (found by
// the first read of the host prefix, or written since).
func (p *Publisher) withCopies(desired map[string][]byte, known, readers bool) map[string][]byte {
	if known && !readers {
		return desired
	}
	out := maps.Clone(desired)
	for k, v := range desired {
		pk, err := p.keys.parse(k)
		if err != nil || pk.kind != kindEndpoint || pk.legacy {
			continue
		}
		hk := p.keys.hostEndpoint(pk.network, pk.ip, pk.host)
		if _, found := p.published[hk]; readers || found {
			out[hk] = v
		}
	}
	return out
}

// State returns the publisher's progress.
func (p *Publisher) State() PublisherState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state
}

// Run writes and keeps the records alive until ctx ends; it returns nil.
func (p *Publisher) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("etcd publisher: already running")
	}
	var alive <-chan *clientv3.LeaseKeepAliveResponse // nil: keep-alives are not running
	stopKA := func() {}
	defer func() { stopKA() }()
	defer p.guard.stop()
	retry := time.NewTimer(0)
	defer retry.Stop()
	delay := 100 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.kick:
		case <-retry.C:
		case _, ok := <-alive:
			if ok {
				continue
			}
			stopKA()
			alive = nil
			p.log.Warn("etcd lease keep-alives stopped", "lease", fmt.Sprintf("%x", p.lease))
		case r := <-p.guard.events:
			if !p.watched(ctx, r) {
				continue
			}
		}
		err := p.round(ctx, &alive, &stopKA)
		if err != nil {
			p.failed(ctx, err)
			retry.Reset(delay)
			delay = min(2*delay, time.Second)
			continue
		}
		delay = 100 * time.Millisecond
		wait, held := p.guard.held() // foreign writes wait for their restore
		if _, copies, due := p.copyMode(); copies && due > 0 && (!held || due < wait) {
			wait, held = due, true // the copies' deletion
		}
		if held {
			retry.Reset(wait)
		}
	}
}

// round makes sure a lease is held and kept alive and this host's prefix
// watched, then writes what changed.
func (p *Publisher) round(ctx context.Context, alive *<-chan *clientv3.LeaseKeepAliveResponse, stopKA *func()) error {
	if err := p.holdLease(ctx, alive, stopKA); err != nil {
		return err
	}
	if want := p.guardPrefixes(); !p.guard.covers(want) {
		if err := p.audit(ctx, want); err != nil {
			return fmt.Errorf("read this host's records: %w", err)
		}
	}
	if err := p.sync(ctx); err != nil {
		return fmt.Errorf("write records: %w", err)
	}
	if err := p.migrate(ctx); err != nil {
		return fmt.Errorf("remove this host's records of the old key layout: %w", err)
	}
	return nil
}

// holdLease grants a lease or resumes the one held, and keeps it alive.
func (p *Publisher) holdLease(ctx context.Context, alive *<-chan *clientv3.LeaseKeepAliveResponse, stopKA *func()) error {
	if p.lease != 0 && *alive == nil {
		// Keep-alives stopped (etcd was away longer than the TTL). etcd
		// renews every lease when a new leader takes over, so the lease
		// and the records under it may still be there.
		cctx, cancel := context.WithTimeout(ctx, DefaultDialTimeout)
		_, err := p.cfg.Client.KeepAliveOnce(cctx, p.lease)
		cancel()
		switch {
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			p.log.Warn("etcd lease expired; granting a new one and publishing again", "lease", fmt.Sprintf("%x", p.lease))
			p.setLease(0)
		case err != nil:
			return fmt.Errorf("renew lease: %w", err)
		default:
			ch, stop, err := p.keepAlive(ctx, p.lease)
			if err != nil {
				return fmt.Errorf("keep lease alive: %w", err)
			}
			*alive, *stopKA = ch, stop
			p.log.Info("etcd lease still held; keep-alives resumed", "lease", fmt.Sprintf("%x", p.lease))
		}
	}
	if p.lease != 0 {
		return nil
	}
	(*stopKA)() // the keep-alives of a lost lease, if still running
	*alive, *stopKA = nil, func() {}
	gctx, cancel := context.WithTimeout(ctx, DefaultDialTimeout)
	resp, err := p.cfg.Client.Grant(gctx, int64((p.cfg.TTL+time.Second-1)/time.Second))
	cancel()
	if err != nil {
		return fmt.Errorf("grant lease: %w", err)
	}
	p.setLease(resp.ID)
	p.guard.leaseRev = resp.GetRevision()
	p.log.Info("etcd lease granted", "lease", fmt.Sprintf("%x", resp.ID), "ttl", resp.TTL)
	if p.afterGrant != nil {
		p.afterGrant(resp.ID)
	}
	ch, stop, err := p.keepAlive(ctx, resp.ID)
	if err != nil {
		return fmt.Errorf("keep lease alive: %w", err)
	}
	*alive, *stopKA = ch, stop
	return nil
}

func (p *Publisher) keepAlive(ctx context.Context, id clientv3.LeaseID) (<-chan *clientv3.LeaseKeepAliveResponse, func(), error) {
	kctx, stop := context.WithCancel(ctx)
	ch, err := p.cfg.Client.KeepAlive(kctx, id)
	if err != nil {
		stop()
		return nil, func() {}, err
	}
	return ch, stop, nil
}

// setLease switches to a new lease (0: none); nothing is published under
// a new lease yet: every key of the prefix is written again.
func (p *Publisher) setLease(id clientv3.LeaseID) {
	p.lease = id
	for k := range p.published {
		p.published[k] = nil
	}
	p.mu.Lock()
	p.state.Lease, p.state.Published, p.state.Pending = id, 0, true
	if id != 0 {
		p.state.Grants++
	}
	p.mu.Unlock()
}

// sync writes what differs between the desired and the published records,
// in transactions of at most maxTxnOps operations, each within one of this
// host's prefixes (its claims of one network, or its host prefix): etcd
// refusing one network's claims (its role has no grant for that network)
// holds back those alone. Claims go first (claims/ sorts before hosts/):
// an upgraded host's new claims are written before its host layout's are
// deleted. Keys a foreign write changed wait until the guard lets them be
// restored.
func (p *Publisher) sync(ctx context.Context) error {
	known, readers, _ := p.copyMode()
	p.mu.Lock()
	desired, gen := p.desired, p.gen
	p.mu.Unlock()
	desired = p.withCopies(desired, known, readers)
	type op struct {
		group string
		op    clientv3.Op
		done  func()
		claim string // a copy's claim in the claims layout: the copy is written once it is
	}
	var ops []op
	for _, k := range slices.Sorted(maps.Keys(desired)) {
		v := desired[k]
		if old, ok := p.published[k]; ok && bytes.Equal(old, v) || p.guard.waits(k) {
			continue
		}
		ops = append(ops, op{p.group(k), clientv3.OpPut(k, string(v), clientv3.WithLease(p.lease)),
			func() { p.published[k] = v; p.guard.restored(k) }, p.claimOfCopy(k)})
	}
	for _, k := range slices.Sorted(maps.Keys(p.published)) {
		if _, ok := desired[k]; !ok && !p.guard.waits(k) {
			ops = append(ops, op{p.group(k), clientv3.OpDelete(k), func() { delete(p.published, k); p.guard.restored(k) }, ""})
		}
	}
	slices.SortStableFunc(ops, func(a, b op) int { return strings.Compare(a.group, b.group) })
	var denied error
	for len(ops) > 0 {
		// A copy waits for its claim (written by an earlier transaction:
		// claims/ sorts before hosts/), so that a claim etcd refuses (no
		// grant for its network) is not published through its copy.
		var batch []clientv3.Op
		var sent []op
		n := 0
		for ; n < len(ops) && len(batch) < maxTxnOps && ops[n].group == ops[0].group; n++ {
			if o := ops[n]; o.claim == "" || bytes.Equal(p.published[o.claim], o.op.ValueBytes()) {
				batch, sent = append(batch, o.op), append(sent, o)
			}
		}
		if len(batch) == 0 {
			ops = ops[n:]
			continue
		}
		err := p.commit(ctx, batch)
		switch {
		case err != nil && errors.Is(err, rpctypes.ErrPermissionDenied) && !errors.Is(err, errLeaseTampered):
			// This prefix alone is refused: the others are written.
			if denied == nil {
				denied = fmt.Errorf("%s: %w", ops[0].group, err)
			}
			for n < len(ops) && ops[n].group == ops[0].group {
				n++
			}
		case err != nil:
			return err
		default:
			for _, o := range sent {
				o.done()
			}
		}
		ops = ops[n:]
	}
	if denied != nil {
		return denied
	}
	p.mu.Lock()
	if p.failing {
		p.log.Info("etcd publisher: records written again", "keys", len(p.published))
	}
	p.failing = false
	p.state.Published = len(p.published)
	p.state.Pending = gen != p.gen || p.guard.pending()
	p.mu.Unlock()
	return nil
}

// claimOfCopy returns the claim that key is the host layout's copy of, ""
// if it is not one.
func (p *Publisher) claimOfCopy(key string) string {
	pk, err := p.keys.parse(key)
	if err != nil || pk.kind != kindEndpoint || !pk.legacy {
		return ""
	}
	return p.keys.endpoint(pk.network, pk.ip, pk.host)
}

// group is the prefix of this host's that key is under: its claims of one
// network, or its host prefix.
func (p *Publisher) group(key string) string {
	if pk, err := p.keys.parse(key); err == nil && pk.kind == kindEndpoint && !pk.legacy {
		return p.keys.claimPrefix(pk.network, pk.host)
	}
	return p.keys.hostPrefix(p.cfg.Host)
}

// commit runs one transaction of this host's writes and notes its
// revision as one of ours, so that the guard knows them from others'.
func (p *Publisher) commit(ctx context.Context, ops []clientv3.Op) error {
	tctx, cancel := context.WithTimeout(ctx, DefaultDialTimeout)
	resp, err := p.cfg.Client.Txn(tctx).Then(ops...).Commit()
	cancel()
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		p.setLease(0) // expired while etcd was away: the next round re-grants
	case errors.Is(err, rpctypes.ErrPermissionDenied) && p.leaseTampered(ctx):
		p.setLease(0)
		return errLeaseTampered
	case err != nil && !refused(err):
		p.guard.maybe(ops) // it may have been applied all the same
	}
	if err != nil {
		return err
	}
	p.guard.sure(ops)
	if changed(ops, resp) {
		p.guard.ours(resp.Header.Revision)
	}
	return nil
}

// refused reports whether etcd refused a transaction (nothing applied), as
// opposed to an answer lost on the way.
func refused(err error) bool {
	return errors.Is(err, rpctypes.ErrLeaseNotFound) || errors.Is(err, rpctypes.ErrPermissionDenied) ||
		errors.Is(err, rpctypes.ErrTooManyOps) || errors.Is(err, rpctypes.ErrRequestTooLarge)
}

// changed reports whether a transaction changed anything, that is, made a
// revision of its own: a put always does; deletes only of keys that exist.
func changed(ops []clientv3.Op, resp *clientv3.TxnResponse) bool {
	for i, op := range ops {
		if op.IsPut() {
			return true
		}
		if i < len(resp.Responses) && resp.Responses[i].GetResponseDeleteRange().GetDeleted() > 0 {
			return true
		}
	}
	return false
}

var errLeaseTampered = errors.New("another writer attached a key to this host's lease; a new lease is taken")

// failed counts a failed round and logs the first of a series.
func (p *Publisher) failed(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	p.mu.Lock()
	p.state.Failures++
	p.state.Pending = true
	first := !p.failing
	p.failing = true
	p.mu.Unlock()
	if errors.Is(err, rpctypes.ErrPermissionDenied) && !errors.Is(err, errLeaseTampered) {
		err = fmt.Errorf("%w (the etcd user needs readwrite on the prefixes %s and %s of each network "+
			"this host has endpoints in, and read on %s: is --node-name the host its role was made for, "+
			"and the network granted to it? docs/etcd.md, Trust and roles)", err, p.keys.hostPrefix(p.cfg.Host),
			p.keys.claimPrefix("<network>", p.cfg.Host), p.keys.root())
	}
	if first {
		p.log.Warn("etcd publisher: cannot publish; retrying until etcd answers", "err", err)
	} else {
		p.log.Debug("etcd publisher: cannot publish; retrying", "err", err)
	}
}
