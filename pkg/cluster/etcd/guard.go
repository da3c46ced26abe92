package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The publisher's guard: it watches this host's prefix and tells the
// agent's own writes from others'. A revision is ours when one of our
// transactions made it (etcd gives every transaction a revision of its
// own, so no other writer's change can carry it); a put that holds
// exactly what we wrote, under our lease, is ours too, and so is what a
// transaction whose answer was lost meant to do. Deletions older than our
// lease are its predecessor's expiry. Anything else is foreign: logged,
// counted and undone.
// Undoing is immediate the first time and backs off (1 s doubling to 30 s)
// while foreign writes keep coming, as they do when a second agent runs
// with the same node name: the two then take turns, both report it.

const (
	restoreFirstDelay = time.Second
	restoreMaxDelay   = 30 * time.Second
	restoreQuiet      = time.Minute // without foreign writes, the next one is undone at once again
)

// guard is the Run goroutine's bookkeeping of the watches of its
// prefixes: hosts/<host>/ and claims/<network>/<host>/ of each network it
// publishes in (one watch each, their responses merged into events).
type guard struct {
	events   <-chan guardResp // nil while not watching
	cancel   context.CancelFunc
	prefixes []string // watched, sorted
	// last is the revision each watch has delivered up to.
	last []int64
	mine map[int64]struct{} // revisions of our transactions the watches have not all passed yet
	// unsure holds what failed transactions may have done all the same
	// (their answer was lost): key -> value put, nil for a delete.
	unsure map[string][]byte
	// leaseRev is the revision when our lease was granted: deletions up
	// to it are the expiry of the lease before, not foreign writes.
	leaseRev int64
	// foreign holds the keys a foreign write changed, until restored;
	// restoreAt is when they may be.
	foreign   map[string]struct{}
	restoreAt time.Time
	delay     time.Duration
	last1     time.Time       // the last foreign write seen
	audited   map[string]bool // the prefixes audited once (what the first audit finds is an earlier run's)
	migrated  bool            // the old layout's records were dealt with
}

// guardResp is one response of the watch of prefixes[watch].
type guardResp struct {
	watch int
	resp  clientv3.WatchResponse
	ok    bool // false: the watch's channel closed
}

func newGuard() guard {
	return guard{mine: map[int64]struct{}{}, unsure: map[string][]byte{}, foreign: map[string]struct{}{},
		audited: map[string]bool{}}
}

func (g *guard) watching() bool { return g.events != nil }

// covers reports whether the guard watches exactly prefixes.
func (g *guard) covers(prefixes []string) bool {
	return g.watching() && slices.Equal(g.prefixes, prefixes)
}

func (g *guard) stop() {
	if g.cancel != nil {
		g.cancel()
	}
	g.events, g.cancel, g.prefixes, g.last = nil, nil, nil, nil
}

// seen notes that watch w delivered everything up to rev; our revisions
// older than what every watch delivered are forgotten.
func (g *guard) seen(w int, rev int64) {
	if w < 0 || w >= len(g.last) || rev <= g.last[w] {
		return
	}
	g.last[w] = rev
	g.passed(slices.Min(g.last))
}

// ours notes the revision of one of our transactions.
func (g *guard) ours(rev int64) { g.mine[rev] = struct{}{} }

// isOurs reports whether rev is one of our transactions'.
func (g *guard) isOurs(rev int64) bool {
	_, ok := g.mine[rev]
	return ok
}

// passed forgets our revisions older than rev: every watch has delivered
// them (each delivers revisions in order).
func (g *guard) passed(rev int64) {
	for r := range g.mine {
		if r < rev {
			delete(g.mine, r)
		}
	}
}

// maybe notes the writes of a transaction whose outcome is unknown.
func (g *guard) maybe(ops []clientv3.Op) {
	for _, op := range ops {
		if op.IsPut() {
			g.unsure[string(op.KeyBytes())] = op.ValueBytes()
		} else {
			g.unsure[string(op.KeyBytes())] = nil
		}
	}
}

// sure forgets the unknown outcome of earlier writes of ops' keys.
func (g *guard) sure(ops []clientv3.Op) {
	if len(g.unsure) == 0 {
		return
	}
	for _, op := range ops {
		delete(g.unsure, string(op.KeyBytes()))
	}
}

// meant reports whether an event is what a transaction with a lost answer
// meant to do.
func (g *guard) meant(ev *clientv3.Event) bool {
	v, ok := g.unsure[string(ev.Kv.Key)]
	if !ok || (v == nil) != (ev.Type == clientv3.EventTypeDelete) || !bytes.Equal(v, ev.Kv.Value) {
		return false
	}
	delete(g.unsure, string(ev.Kv.Key))
	return true
}

// waits reports whether a key changed by a foreign write must wait
// before it is restored.
func (g *guard) waits(key string) bool {
	_, ok := g.foreign[key]
	return ok && time.Now().Before(g.restoreAt)
}

func (g *guard) restored(key string) { delete(g.foreign, key) }

func (g *guard) pending() bool { return len(g.foreign) > 0 }

// held returns how long until the waiting keys may be restored.
func (g *guard) held() (time.Duration, bool) {
	if len(g.foreign) == 0 {
		return 0, false
	}
	return max(time.Until(g.restoreAt), 0), true
}

// mark records foreign writes to keys and schedules their restore.
func (g *guard) mark(keys []string, now time.Time) {
	switch {
	case now.Sub(g.last1) > restoreQuiet:
		g.delay = 0
	case g.delay == 0:
		g.delay = restoreFirstDelay
	default:
		g.delay = min(2*g.delay, restoreMaxDelay)
	}
	g.last1, g.restoreAt = now, now.Add(g.delay)
	for _, k := range keys {
		g.foreign[k] = struct{}{}
	}
}

// write is one change to a key of this host's prefix.
type write struct {
	key     string
	kv      *mvccpb.KeyValue // the new value; for a delete, its key and revision only
	deleted bool
}

// guardPrefixes is what this host writes: its host prefix and its claim
// prefix in each network it publishes in (or still holds a key of).
func (p *Publisher) guardPrefixes() []string {
	nets := map[string]bool{}
	p.mu.Lock()
	for k := range p.desired {
		if pk, err := p.keys.parse(k); err == nil && pk.kind == kindEndpoint && !pk.legacy {
			nets[pk.network] = true
		}
	}
	p.mu.Unlock()
	for k := range p.published {
		if pk, err := p.keys.parse(k); err == nil && pk.kind == kindEndpoint && !pk.legacy {
			nets[pk.network] = true
		}
	}
	out := []string{p.keys.hostPrefix(p.cfg.Host)}
	for n := range nets {
		out = append(out, p.keys.claimPrefix(n, p.cfg.Host))
	}
	slices.Sort(out)
	return out
}

// owns reports whether key is under one of this host's prefixes.
func (p *Publisher) owns(key string) bool {
	if strings.HasPrefix(key, p.keys.hostPrefix(p.cfg.Host)) {
		return true
	}
	pk, err := p.keys.parse(key)
	return err == nil && pk.kind == kindEndpoint && !pk.legacy && pk.host == p.cfg.Host
}

// audit reads this host's prefixes at one revision, compares them with
// what this agent wrote, and watches them from the next revision. What it
// finds under a prefix it reads for the first time is an earlier run's:
// written again under this run's lease (deleted if no longer wanted), not
// reported. (An earlier run's claims in networks this run does not
// publish in are not read: they expire with that run's lease.)
func (p *Publisher) audit(ctx context.Context, prefixes []string) error {
	var rev int64
	var changes []write
	seen := map[string]bool{}
	for _, prefix := range prefixes {
		opts := []clientv3.OpOption{clientv3.WithPrefix()}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		gctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		resp, err := p.cfg.Client.Get(gctx, prefix, opts...)
		cancel()
		if err != nil {
			return err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		first := !p.guard.audited[prefix]
		for _, kv := range resp.Kvs {
			key := string(kv.Key)
			seen[key] = true
			if first {
				p.published[key] = nil
			} else if !p.ourKV(key, kv) {
				changes = append(changes, write{key: key, kv: kv})
			}
		}
		if first && len(resp.Kvs) > 0 {
			p.log.Info("etcd: records of an earlier run of this host found; writing them again under this run's lease",
				"prefix", prefix, "keys", len(resp.Kvs))
		}
		p.guard.audited[prefix] = true
	}
	for _, key := range slices.Sorted(maps.Keys(p.published)) {
		if !seen[key] && p.published[key] != nil && under(key, prefixes) {
			changes = append(changes, write{key: key, kv: &mvccpb.KeyValue{Key: []byte(key)}, deleted: true})
		}
	}
	p.guard.passed(rev + 1) // the watches start after them
	clear(p.guard.unsure)   // the listing showed what they did
	p.undo(ctx, changes)
	p.guard.stop()
	wctx, stop := context.WithCancel(ctx)
	out := make(chan guardResp)
	for i, prefix := range prefixes {
		wch := p.cfg.Client.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
		go forward(wctx, i, wch, out)
	}
	p.guard.events, p.guard.cancel, p.guard.prefixes = out, stop, prefixes
	p.guard.last = make([]int64, len(prefixes))
	for i := range p.guard.last {
		p.guard.last[i] = rev
	}
	return nil
}

// forward passes watch i's responses to out, then its end, until ctx ends.
func forward(ctx context.Context, i int, wch clientv3.WatchChan, out chan<- guardResp) {
	for {
		resp, ok := <-wch
		select {
		case out <- guardResp{watch: i, resp: resp, ok: ok}:
		case <-ctx.Done():
			return
		}
		if !ok {
			return
		}
	}
}

// under reports whether key is under one of prefixes.
func under(key string, prefixes []string) bool {
	return slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(key, p) })
}

// ourKV reports whether a key holds what this agent wrote.
func (p *Publisher) ourKV(key string, kv *mvccpb.KeyValue) bool {
	if p.guard.isOurs(kv.ModRevision) {
		return true
	}
	pub := p.published[key]
	return pub != nil && kv.Lease == int64(p.lease) && bytes.Equal(kv.Value, pub)
}

// watched handles one response of a watch of this host's prefixes; it
// reports whether a round must run (to restore, or to watch again).
func (p *Publisher) watched(ctx context.Context, r guardResp) bool {
	resp := r.resp
	if !r.ok || resp.Canceled || resp.Err() != nil || resp.CompactRevision != 0 {
		p.log.Debug("etcd: watch of this host's records ended; reading them again", "err", resp.Err())
		p.guard.stop() // the next round audits and watches again
		return true
	}
	if resp.IsProgressNotify() {
		p.guard.seen(r.watch, resp.Header.Revision)
		return false
	}
	var changes []write
	for _, ev := range resp.Events {
		key := string(ev.Kv.Key)
		pub, have := p.published[key]
		p.guard.seen(r.watch, ev.Kv.ModRevision)
		switch {
		case p.guard.meant(ev):
		case ev.Type == clientv3.EventTypePut && !p.ourKV(key, ev.Kv):
			changes = append(changes, write{key: key, kv: ev.Kv})
		case ev.Type == clientv3.EventTypeDelete && ev.Kv.ModRevision <= p.guard.leaseRev:
			// The expiry of our previous lease, seen after we wrote
			// everything again under a new one.
		case ev.Type == clientv3.EventTypeDelete && !p.guard.isOurs(ev.Kv.ModRevision) && have:
			if pub != nil {
				changes = append(changes, write{key: key, kv: ev.Kv, deleted: true})
				continue
			}
			// An earlier run's record, gone with its lease: nothing
			// to delete any more; a wanted one is written all the same.
			if _, want := p.wanted(key); !want {
				delete(p.published, key)
			}
		}
	}
	return p.undo(ctx, changes)
}

// wanted returns the desired value of a key: a record, or the host
// layout's copy of a claim while another host reads that layout alone.
func (p *Publisher) wanted(key string) ([]byte, bool) {
	_, copies, _ := p.copyMode()
	p.mu.Lock()
	defer p.mu.Unlock()
	if v, ok := p.desired[key]; ok || !copies {
		return v, ok
	}
	pk, err := p.keys.parse(key)
	if err != nil || pk.kind != kindEndpoint || !pk.legacy || pk.host != p.cfg.Host {
		return nil, false
	}
	v, ok := p.desired[p.keys.endpoint(pk.network, pk.ip, pk.host)]
	return v, ok
}

// undo reports foreign changes and marks their keys to be written again
// (or deleted). Deletions while this agent's lease is gone are its
// expiry, not a foreign write: everything is written under a new lease.
func (p *Publisher) undo(ctx context.Context, changes []write) bool {
	if len(changes) == 0 {
		return false
	}
	if slices.ContainsFunc(changes, func(w write) bool { return w.deleted }) {
		switch alive, err := p.leaseAlive(ctx); {
		case err != nil || !alive:
			// Not known to be foreign: written again all the same.
			if err == nil {
				p.log.Warn("etcd lease expired; granting a new one and publishing again", "lease", fmt.Sprintf("%x", p.lease))
				p.setLease(0)
			}
			changes = slices.DeleteFunc(changes, func(w write) bool {
				if w.deleted {
					p.published[w.key] = nil
				}
				return w.deleted
			})
		}
	}
	keys := make([]string, 0, len(changes))
	for _, w := range changes {
		keys = append(keys, w.key)
		p.published[w.key] = nil // written again if wanted, deleted if not
	}
	if len(keys) == 0 {
		return true
	}
	p.guard.mark(keys, time.Now())
	p.mu.Lock()
	p.state.ForeignWrites += uint64(len(keys))
	p.state.Pending = true
	p.mu.Unlock()
	p.reportForeign(changes)
	return true
}

// leaseAlive asks etcd whether this agent's lease still exists.
func (p *Publisher) leaseAlive(ctx context.Context) (bool, error) {
	if p.lease == 0 {
		return false, nil
	}
	cctx, cancel := context.WithTimeout(ctx, DefaultDialTimeout)
	defer cancel()
	resp, err := p.cfg.Client.TimeToLive(cctx, p.lease)
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return resp.TTL > 0, nil
}

// leaseTampered reports whether another writer attached a key to this
// agent's lease (possible only before the agent's first write under it):
// etcd then refuses the agent's writes under it, and a new lease is needed.
func (p *Publisher) leaseTampered(ctx context.Context) bool {
	cctx, cancel := context.WithTimeout(ctx, DefaultDialTimeout)
	defer cancel()
	resp, err := p.cfg.Client.TimeToLive(cctx, p.lease, clientv3.WithAttachedKeys())
	var foreign []string
	switch {
	case errors.Is(err, rpctypes.ErrPermissionDenied):
		foreign = []string{"(a key this host may not read)"}
	case err != nil:
		return false
	}
	if resp != nil {
		for _, k := range resp.Keys {
			if !p.owns(string(k)) {
				foreign = append(foreign, string(k))
			}
		}
	}
	if len(foreign) == 0 {
		return false
	}
	p.mu.Lock()
	p.state.ForeignWrites += uint64(len(foreign))
	p.mu.Unlock()
	p.log.Error("etcd: another writer attached keys to this host's lease, so etcd refuses this host's writes "+
		"under it; taking a new lease", "lease", fmt.Sprintf("%x", p.lease), "keys", foreign)
	return true
}

// reportForeign logs one batch of foreign changes.
func (p *Publisher) reportForeign(changes []write) {
	const shown = 5
	var keys []string
	var writer int64 // a lease the foreign writer used, if any
	for _, w := range changes {
		if len(keys) < shown {
			keys = append(keys, w.key)
		}
		if !w.deleted && w.kv.Lease != 0 && writer == 0 {
			writer = w.kv.Lease
		}
	}
	wait, _ := p.guard.held()
	args := []any{"keys", keys, "changes", len(changes), "revision", changes[0].kv.ModRevision,
		"restore_in", wait.Round(time.Millisecond), "host", p.cfg.Host}
	msg := "etcd: another writer changed this host's records; restoring them (anyone holding credentials " +
		"that may write this host's prefix can: docs/etcd.md, Trust and roles)"
	if writer != 0 {
		msg = "etcd: another writer changed this host's records under its own lease; restoring them " +
			"(is a second agent running with the same --node-name?)"
		args = append(args, "writer_lease", fmt.Sprintf("%x", writer))
	}
	p.log.Error(msg, args...)
}

// migrate removes, once, this host's records of the old key layout
// (hosts/<host>, endpoints/<network>/<ip>/<host>), written by an earlier
// version under one lease: revoking that lease deletes them all at one
// revision. Without the permission (an etcd role that confines the host
// to its new prefix), they are left to expire with their lease.
func (p *Publisher) migrate(ctx context.Context) error {
	if p.guard.migrated {
		return nil
	}
	key := p.keys.oldHost(p.cfg.Host)
	cctx, cancel := context.WithTimeout(ctx, DefaultDialTimeout)
	defer cancel()
	resp, err := p.cfg.Client.Get(cctx, key)
	if err != nil {
		return err
	}
	if len(resp.Kvs) == 0 {
		p.guard.migrated = true
		return nil
	}
	old := clientv3.LeaseID(resp.Kvs[0].Lease)
	if old != 0 && old != p.lease {
		_, err = p.cfg.Client.Revoke(cctx, old)
	} else {
		_, err = p.cfg.Client.Delete(cctx, key)
	}
	switch {
	case errors.Is(err, rpctypes.ErrPermissionDenied):
		p.log.Warn("etcd: this host's records of the old key layout cannot be removed (permission denied); "+
			"they expire with their lease", "key", key, "lease", fmt.Sprintf("%x", old))
	case err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound):
		return err
	default:
		p.log.Info("etcd: this host's records of the old key layout removed", "key", key, "lease", fmt.Sprintf("%x", old))
	}
	p.guard.migrated = true
	return nil
}
