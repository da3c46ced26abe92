package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
)

// Defaults of Config.
const (
	DefaultProbeInterval = 5 * time.Second
	maxCoalesce          = 256 // watch responses folded into one view at most
)

// Config configures the etcd-backed Source.
type Config struct {
	Client *clientv3.Client
	Prefix string // default DefaultPrefix
	// Networks from a local file, if any. They win over network records
	// of the same name in etcd.
	Networks []cluster.Network
	Logger   *slog.Logger // nil: discard
	// OnReject is called for every problem, once per problem: kind is
	// KindRecord, KindConflict or KindEndpoint. It runs on Run's goroutine
	// and must not block.
	OnReject func(kind string, err error)
	// ProbeInterval is the period of the health probe, a linearizable read
	// of one key that fails when etcd has no quorum. ProbeTimeout bounds
	// it (default DefaultDialTimeout).
	ProbeInterval, ProbeTimeout time.Duration
	// Scoped loads the claims of the networks of interest alone
	// (SetInterest; scope.go): the agent's default. Unset, the whole
	// prefix is listed and watched (--all-remote-flows, tools, tests).
	Scoped bool
	// OnHostLayoutReaders is called with the hosts whose records say they
	// read the host layout alone (agents of the previous version: records
	// without HostRecord.ClaimsLayout), sorted, after the first list and
	// whenever that set changes: the agent passes them to its Publisher
	// (SetHostLayoutReaders). It runs on Run's goroutine and must not
	// block.
	OnHostLayoutReaders func(hosts []string)
	// PageSize, if set, lists the prefix in pages of that many keys (at
	// one revision). Default: one range read of the whole prefix, the
	// fastest by far (etcd counts the rest of the range for every page)
	// and one response to decode; etcd's client accepts responses up to
	// 2 GiB (100,000 endpoint records are ~10 MB).
	PageSize int64
}

// State is the source's connection to etcd, for metrics and logs.
type State struct {
	Connected bool
	Since     time.Time // when Connected last changed
	LastError string
	Revision  int64 // etcd revision of the view in force
	// Re-lists after a watch fell behind a compaction: of the whole
	// prefix (unscoped), of the hosts' and networks' records and of one
	// network's claims (Config.Scoped: each range is listed again alone).
	Resyncs, BaseResyncs, ClaimResyncs uint64
	// Records stored (valid or not yet resolved), records of the old key
	// layout (ignored), and what the view holds.
	Networks, Hosts, Claims, OldLayout int
	ViewEndpoints                      int
	// Loaded is how many networks' claims are loaded (Config.Scoped).
	Loaded int
	// HostLayoutReaders is how many hosts' records say they read the host
	// layout alone (agents of the previous version).
	HostLayoutReaders int
}

// Source is the cluster view kept in etcd (key layout: package doc). It
// lists the prefix once, then watches from the next revision; when the
// watch falls behind a compaction it lists again. While etcd cannot be
// reached the last view stays in force.
type Source struct {
	cfg     Config
	keys    keys
	log     *slog.Logger
	updates chan cluster.View
	running atomic.Bool

	mu      sync.Mutex
	current cluster.View
	have    bool
	state   State

	// Scoped loading (scope.go): the networks of interest, the kick of
	// their changes, and the networks loaded (Run's goroutine).
	interest   map[string]bool
	kick       chan struct{}
	loadedNets []string
	// readers is what OnHostLayoutReaders was last given; told: it was
	// called (Run's goroutine).
	readers []string
	told    bool

	// beforeWatch, if set (tests), runs before each watch starts.
	beforeWatch func(rev int64)
	// beforeFollow, if set (tests), runs on a scoped watch's goroutine
	// before each etcd watch of its range (network, "" for the base) from
	// after rev: it may hold one watch back while the others go on.
	beforeFollow func(network string, rev int64)
}

var _ cluster.Source = (*Source)(nil)

// New checks cfg; Run connects.
func New(cfg Config) (*Source, error) {
	if cfg.Client == nil {
		return nil, errors.New("etcd source: no client")
	}
	prefix, err := normalizePrefix(cfg.Prefix)
	if err != nil {
		return nil, err
	}
	if err := cluster.Validate(cluster.View{Networks: cfg.Networks}); err != nil {
		return nil, fmt.Errorf("etcd source: local networks: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = DefaultProbeInterval
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = DefaultDialTimeout
	}
	return &Source{cfg: cfg, keys: keys{prefix}, log: cfg.Logger.With("etcd_prefix", prefix),
		updates: make(chan cluster.View, 1), kick: make(chan struct{}, 1)}, nil
}

// Updates returns the channel of new views (latest wins, never closed).
func (s *Source) Updates() <-chan cluster.View { return s.updates }

// Current returns the view in force, once the first list succeeded.
func (s *Source) Current() (cluster.View, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current, s.have
}

// State returns the connection state and counts.
func (s *Source) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// Run lists and watches until ctx ends; it returns nil then. Errors from
// etcd are retried with backoff; the last view stays in force meanwhile.
func (s *Source) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("etcd source: already running")
	}
	if s.cfg.Scoped {
		return s.runScoped(ctx)
	}
	go s.probe(ctx)
	var x *index
	var rev int64                  // last revision applied
	var reported map[string]string // of the index a re-list replaces
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		if x == nil {
			var err error
			if x, rev, err = s.list(ctx, reported); err != nil {
				x = nil
				s.setConnected(false, err)
				sleep(ctx, delay)
				delay = min(2*delay, 5*time.Second)
				continue
			}
		}
		delay = 100 * time.Millisecond
		next, err := s.watch(ctx, x, rev)
		rev = next
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, errResync):
			s.log.Warn("etcd watch fell behind a compaction; listing again", "revision", rev)
			x, reported = nil, x.reported
			s.mu.Lock()
			s.state.Resyncs++
			s.mu.Unlock()
		default:
			s.log.Warn("etcd watch ended; resuming from the last revision", "revision", rev, "err", err)
			s.setConnected(false, err)
			sleep(ctx, delay)
		}
	}
	return nil
}

var errResync = errors.New("watch revision compacted")

// list reads the whole prefix at one revision (one range read, or page
// by page with Config.PageSize) into a new index, publishes its view and
// returns the revision.
func (s *Source) list(ctx context.Context, reported map[string]string) (*index, int64, error) {
	start := time.Now()
	x := newIndex(s.keys, s.cfg.Networks, s.cfg.OnReject)
	x.previous = reported
	key, end := s.keys.root(), clientv3.GetPrefixRangeEnd(s.keys.root())
	var rev int64
	var read time.Duration // waiting for etcd
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end)}
		if s.cfg.PageSize > 0 {
			opts = append(opts, clientv3.WithLimit(s.cfg.PageSize))
		}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		asked := time.Now()
		resp, err := s.cfg.Client.Get(pctx, key, opts...)
		cancel()
		read += time.Since(asked)
		if err != nil {
			return nil, 0, fmt.Errorf("etcd list %s: %w", s.keys.root(), err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
			x.expect(int(resp.Count))
		}
		if !resp.More || len(resp.Kvs) == 0 {
			key = ""
		} else {
			key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		}
		for i, kv := range resp.Kvs {
			x.put(string(kv.Key), kv.Value, kv.CreateRevision)
			resp.Kvs[i] = nil // indexed: the collector may take it
		}
		if key == "" {
			break
		}
	}
	x.resolve()
	s.setConnected(true, nil)
	s.publish(x, rev, true)
	n, h, c, old := x.counts()
	s.log.Info("etcd listed", "revision", rev, "networks", n, "hosts", h, "endpoint_records", c,
		"old_layout_records", old, "view_endpoints", x.endpoints.Len(), "took", time.Since(start), "read", read)
	return x, rev, nil
}

// watch applies changes after rev until the watch ends; it returns the
// last revision applied and errResync when the watch cannot resume.
func (s *Source) watch(ctx context.Context, x *index, rev int64) (int64, error) {
	if s.beforeWatch != nil {
		s.beforeWatch(rev)
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := s.cfg.Client.Watch(wctx, s.keys.root(), clientv3.WithPrefix(), clientv3.WithRev(rev+1),
		clientv3.WithProgressNotify())
	for {
		var resp clientv3.WatchResponse
		var ok bool
		select {
		case <-ctx.Done():
			return rev, ctx.Err()
		case resp, ok = <-wch:
		}
		changed := false
		for n := 0; ; n++ {
			if !ok {
				return s.settle(x, rev, changed, errors.New("watch channel closed"))
			}
			if resp.CompactRevision != 0 {
				return rev, errResync
			}
			if err := resp.Err(); err != nil {
				return s.settle(x, rev, changed, err)
			}
			s.setConnected(true, nil)
			changed = s.apply(x, resp.Events) || changed
			if h := resp.Header.GetRevision(); h > rev {
				rev = h
			}
			if n >= maxCoalesce || len(wch) == 0 {
				break
			}
			resp, ok = <-wch
		}
		s.settle(x, rev, changed, nil)
	}
}

// settle resolves what was applied and publishes a changed view.
func (s *Source) settle(x *index, rev int64, applied bool, err error) (int64, error) {
	if !applied {
		return rev, err
	}
	if x.resolve() {
		s.publish(x, rev, false)
		return rev, err
	}
	s.counts(x) // records that did not change the view
	return rev, err
}

// counts records the index's counts in the state.
func (s *Source) counts(x *index) {
	s.tellReaders(x)
	n, h, c, old := x.counts()
	s.mu.Lock()
	s.state.Networks, s.state.Hosts, s.state.Claims, s.state.OldLayout = n, h, c, old
	s.mu.Unlock()
}

// apply records one response's events; it reports whether any was ours.
func (s *Source) apply(x *index, events []*clientv3.Event) bool {
	for _, ev := range events {
		switch ev.Type {
		case clientv3.EventTypePut:
			x.put(string(ev.Kv.Key), ev.Kv.Value, ev.Kv.CreateRevision)
		case clientv3.EventTypeDelete:
			x.del(string(ev.Kv.Key))
		}
	}
	return len(events) > 0
}

// publish makes the index's view current and offers it on Updates,
// replacing a view the reader has not taken yet.
func (s *Source) publish(x *index, rev int64, listed bool) {
	s.tellReaders(x)
	v := x.view(rev)
	if s.cfg.Scoped {
		v.Scoped, v.Loaded = true, s.loadedNets
	}
	n, h, c, old := x.counts()
	s.mu.Lock()
	if !listed { // a list starts a new index: it knows no delta
		d := x.delta
		d.From = s.current.Revision
		v.Delta = &d
	}
	same := s.have && listed && v.Equal(s.current) && slices.Equal(v.Loaded, s.current.Loaded)
	s.current, s.have = v, true
	s.state.Revision, s.state.Networks, s.state.Hosts, s.state.Claims, s.state.OldLayout = rev, n, h, c, old
	s.state.ViewEndpoints, s.state.Loaded = v.EndpointCount(), len(v.Loaded)
	s.mu.Unlock()
	if same {
		return // a re-list that found nothing new
	}
	s.log.Debug("cluster view from etcd", "revision", rev, "networks", len(v.Networks), "hosts", len(v.Hosts),
		"endpoints", v.EndpointCount())
	cluster.Offer(s.updates, v)
}

// tellReaders passes the hosts that read the host layout alone to
// Config.OnHostLayoutReaders when they changed (a new index after a
// re-list knows them all again: only a difference is passed on).
func (s *Source) tellReaders(x *index) {
	hosts, changed := x.takeHostReaders()
	if !changed || s.told && slices.Equal(hosts, s.readers) {
		return
	}
	s.readers, s.told = hosts, true
	s.mu.Lock()
	s.state.HostLayoutReaders = len(hosts)
	s.mu.Unlock()
	if s.cfg.OnHostLayoutReaders != nil {
		s.cfg.OnHostLayoutReaders(hosts)
	}
}

// setConnected records the connection state and logs its changes.
func (s *Source) setConnected(up bool, err error) {
	s.mu.Lock()
	was := s.state.Connected
	first := s.state.Since.IsZero()
	if up != was || first {
		s.state.Connected, s.state.Since = up, time.Now()
	}
	if err != nil {
		s.state.LastError = err.Error()
	}
	rev := s.current.Revision
	s.mu.Unlock()
	switch {
	case up && !was && !first:
		s.log.Info("etcd reachable again; resynchronising from the last revision", "revision", rev)
	case !up && (was || first):
		s.log.Warn("etcd unreachable; keeping the last cluster view, flows untouched", "revision", rev, "err", err)
	}
}

// probe reads one key every ProbeInterval: a watch alone cannot tell a
// quiet cluster from an unreachable one.
func (s *Source) probe(ctx context.Context) {
	t := time.NewTicker(s.cfg.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, s.cfg.ProbeTimeout)
		_, err := s.cfg.Client.Get(clientv3.WithRequireLeader(pctx), s.keys.probe())
		cancel()
		if ctx.Err() != nil {
			return
		}
		s.setConnected(err == nil, err)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
