// Package reconcile keeps the flows in OVS equal to the desired flows.
//
// The desired flows are grouped by owner (one endpoint, one remote host, one
// network, the fixed flows): callers replace an owner's flows with Set and
// the reconciler works out the flow_mods that change, so the work is
// proportional to the change, not to the table. Flush sends the pending
// flow_mods as one atomic bundle. Sync reads what OVS holds, keeps flows
// that are already right, and fixes the rest (missing, different, stale and
// foreign flows in the tables we own), again in one bundle: used after a
// (re)connection and to repair drift.
//
// Only 64-bit hashes of each desired flow's key and content and the bytes
// of its key are kept, not the flow (store.go): when flow_mods must be
// built (Flush, Sync) the reconciler asks the caller to regenerate the
// owners concerned. A new owner may also be given with SetLater: its flows
// are built and compiled only when a Flush or Sync sends them (a full load
// builds each flow once, while OVS takes the bundle). The Reconciler is
// safe for concurrent use.
//
// A key (table, priority, match) has one holder. When several owners want
// it, the one of lowest Config.Rank, then name, holds it, whatever the
// order of their Sets; the others' flows wait and the strongest waiting
// one is installed when the holder lets the key go (store.go).
//
// A flow the switch refuses isolates its owner: the owner's flows are
// taken out of OVS and retried with backoff, while the other owners' flow
// changes are committed without it (failure.go).
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"iter"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/contiv/libOpenflow/openflow13"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
)

// Owner names a group of flows that are created and removed together, e.g.
// "endpoint/vc1". It must be unique per object: a cookie's 32-bit object
// hash is not (two ports can collide), so owners are names, not cookies.
type Owner string

// Switch is the narrow seam to OVS.
type Switch interface {
	// DumpFlows calls each for every flow in the tables the agent owns, as
	// the switch's replies arrive (the whole table is never held). The
	// Stats and its byte slices are valid only during the call. An error
	// from each ends the dump and is returned.
	DumpFlows(ctx context.Context, each func(*flow.Stats) error) error
	// Commit applies the flow_mods of mods in one atomic, ordered bundle:
	// all or nothing. mods is produced lazily; an error it yields discards
	// the bundle and is returned.
	// When the switch refuses some flow_mods (nothing is applied), the
	// error is, or wraps, a *RefusedError naming them.
	Commit(ctx context.Context, mods iter.Seq2[*openflow13.FlowMod, error]) error
}

// Config wires a Reconciler.
type Config struct {
	Switch Switch
	// Regenerate returns the current flows of owner (the same flows the
	// last Set for it gave). It is called with the reconciler's lock held
	// (from Flush and Sync): it must not call the Reconciler. It may be
	// called from several goroutines at once (owners given with SetLater
	// are prepared in parallel, prepare.go).
	Regenerate func(owner Owner) []flow.Flow
	// Rank orders owners that want the same key: the lowest rank holds it,
	// ties go to the lowest name. Default: every owner ranks 0.
	Rank func(owner Owner) int
	// OnFailure, if set, is told when the switch refuses a flow of an
	// owner that was not failing, when a failing owner's refusal changes
	// (another flow or reason), and when it recovers or is removed (f
	// nil): once per change of state, not per retry. It is called with the
	// reconciler's lock held: it must be quick and not call the
	// Reconciler.
	OnFailure func(owner Owner, f *Failure)
	// RetryAfter is how long an isolated owner waits before its first
	// retry; each refused retry doubles it, up to RetryMax. Defaults 1s
	// and 5m.
	RetryAfter, RetryMax time.Duration
	// Now is the clock (tests). Default time.Now.
	Now func() time.Time
	// OnLaterErrors, if set, gets the errors Set would have returned for
	// an owner given with SetLater, when its flows are compiled. It is
	// called with the reconciler's lock held: it must be quick and not
	// call the Reconciler.
	OnLaterErrors func(owner Owner, errs []error)
}

// Reconciler owns the desired-versus-installed bookkeeping.
type Reconciler struct {
	mu     sync.Mutex
	cfg    Config
	seed   maphash.Seed
	owners map[Owner]*ownerFlows
	byKey  map[uint64]*ownerFlows // flow key hash -> the owner holding it
	// gone holds flows OVS may hold that no owner wants: pending deletes,
	// with the content hash OVS holds.
	gone map[flow.Key]uint64
	// todo holds the owners with a slot waiting for an add.
	todo map[*ownerFlows]struct{}
	// waiters holds, per key hash, the owners whose flow waits for it.
	waiters map[uint64][]*ownerFlows
	// failing holds the owners whose flows the switch refused.
	failing map[*ownerFlows]struct{}
	// fresh: the owner being compiled was given with SetLater, during a
	// commit whose deletes are already chosen (compileLater).
	fresh bool
	// pre: the flows compile is about to get, keyed and validated by
	// prepareAll (prepare.go); compile takes it.
	pre   *prepared
	stats Stats
	// What Stats, Failures and Waiting returned the last time they could
	// take mu (see noWait).
	lastStats    lastRead[Stats]
	lastFailures lastRead[map[Owner]Failure]
	lastWaiting  lastRead[map[Owner][]Waiting]
}

// lastRead is the value a reader computed the last time it found the
// reconciler free.
type lastRead[T any] struct{ v atomic.Pointer[T] }

// noWait serves readers that must not wait (health, metrics, debug): it
// returns read() computed under r.mu when the reconciler is free, and
// otherwise, e.g. while a Sync waits for OVS, the value last computed
// (zero before the first time). A value returned twice is shared: read
// only.
func noWait[T any](r *Reconciler, last *lastRead[T], read func() T) T {
	if !r.mu.TryLock() {
		if v := last.v.Load(); v != nil {
			return *v
		}
		var zero T
		return zero
	}
	defer r.mu.Unlock()
	v := read()
	last.v.Store(&v)
	return v
}

// Stats counts the reconciler's work since it was made.
type Stats struct {
	FlowMods     uint64        // flow_mods committed
	Bundles      uint64        // bundles committed
	Failures     uint64        // bundles that failed
	Syncs        uint64        // Sync runs
	ScopeSyncs   uint64        // SyncScopes runs (drift reported by OVS)
	Repairs      uint64        // flows Sync had to fix (drift)
	Conflicts    uint64        // flows that started waiting for, or took, a key another owner had
	Invalid      uint64        // flows refused by Validate
	Refused      uint64        // flow_mods the switch refused (their owners were isolated)
	LastSync     time.Duration // duration of the last Sync
	DesiredFlows int           // flows the owners want and hold the key of
	PendingFlows int           // flow_mods waiting for the next Flush
	WaitingFlows int           // flows waiting for a key another owner holds
	Failing      int           // owners isolated because the switch refused one of their flows
}

// New returns an empty reconciler.
func New(cfg Config) *Reconciler {
	if cfg.Rank == nil {
		cfg.Rank = func(Owner) int { return 0 }
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = time.Second
	}
	if cfg.RetryMax < cfg.RetryAfter {
		cfg.RetryMax = max(5*time.Minute, cfg.RetryAfter)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Reconciler{cfg: cfg, seed: maphash.MakeSeed(), owners: map[Owner]*ownerFlows{},
		byKey: map[uint64]*ownerFlows{}, gone: map[flow.Key]uint64{}, todo: map[*ownerFlows]struct{}{},
		waiters: map[uint64][]*ownerFlows{}, failing: map[*ownerFlows]struct{}{}}
}

func (r *Reconciler) hash(c flow.Content) uint64 { return maphash.String(r.seed, string(c)) }

// Set replaces the desired flows of owner and queues the flow_mods that
// differ from what is installed. Flows that fail validation are refused;
// a flow whose key a stronger owner holds waits for it, and a flow whose
// key a weaker owner holds takes it (Config.Rank): these are returned as
// errors, the first time only. Set(owner, nil) removes the owner. The
// flows are not kept. An isolated owner whose flows change is retried at
// the next Flush.
func (r *Reconciler) Set(owner Owner, flows []flow.Flow) []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.setLocked(owner, flows)
}

// SetLater is Set for a new owner whose flows are those Regenerate gives:
// they are compiled when the next Flush or Sync reaches the owner, as its
// flow_mods are generated. A full load (every remote host at start-up)
// then builds each flow once, while the bundle is being sent, instead of
// once for Set and again for the bundle. The errors Set would return go
// to Config.OnLaterErrors. An owner the reconciler knows already is Set at
// once (with Regenerate's flows) and the errors are returned.
func (r *Reconciler) SetLater(owner Owner) []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o := r.owners[owner]; o != nil {
		if o.later {
			return nil
		}
		return r.setLocked(owner, r.cfg.Regenerate(owner))
	}
	o := &ownerFlows{name: owner, rank: r.cfg.Rank(owner), later: true}
	r.owners[owner] = o
	r.todo[o] = struct{}{}
	return nil
}

// compileLater compiles the flows of o, an owner given with SetLater;
// flows are Regenerate's. A flow another owner deleted and a bundle being
// sent deletes is not taken over: o's flow is added after the delete.
// It returns the entries o holds, in the order of its slots (nil when o
// has none left).
func (r *Reconciler) compileLater(o *ownerFlows, flows []flow.Flow) []keyed {
	o.later = false
	r.fresh = true
	held, errs := r.setFlows(o.name, flows)
	r.fresh = false
	if len(errs) > 0 && r.cfg.OnLaterErrors != nil {
		r.cfg.OnLaterErrors(o.name, errs)
	}
	return held
}

// compileAllLater compiles every owner given with SetLater (before a
// comparison with what OVS holds: their flows must be known).
func (r *Reconciler) compileAllLater() {
	var later []*ownerFlows
	for _, o := range r.owners {
		if o.later {
			later = append(later, o)
		}
	}
	slices.SortFunc(later, byName)
	pre := r.prepareAll(later) // in parallel (prepare.go)
	r.growKeys(pre)
	for i, o := range later {
		r.pre = pre[i]
		r.compileLater(o, pre[i].flows)
	}
	r.pre = nil
}

func (r *Reconciler) setLocked(owner Owner, flows []flow.Flow) []error {
	_, errs := r.setFlows(owner, flows)
	return errs
}

// setFlows is Set; it also returns the entries the owner holds, in the
// order of its slots (nil when it has none left).
func (r *Reconciler) setFlows(owner Owner, flows []flow.Flow) ([]keyed, []error) {
	o := r.owners[owner]
	if o == nil {
		if len(flows) == 0 {
			return nil, nil
		}
		o = &ownerFlows{name: owner, rank: r.cfg.Rank(owner)}
	}
	o.later = false
	held, waits, errs := r.compile(o, flows)
	o.refused = len(flows) - len(held) - len(waits) // invalid, colliding or repeated keys
	left, changed := r.replace(o, held, waits)
	if !left {
		delete(r.owners, owner)
		delete(r.todo, o)
		r.forgetFailure(o)
		return nil, errs
	}
	r.owners[owner] = o
	if changed && o.fail != nil {
		o.fail.next = r.cfg.Now() // the change may cure it: try now
	}
	if o.dirty() {
		r.todo[o] = struct{}{}
	} else {
		delete(r.todo, o)
	}
	return held, errs
}

// Pending is the number of flow_mods waiting for Flush.
func (r *Reconciler) Pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pendingLocked()
}

func (r *Reconciler) pendingLocked() int {
	n := len(r.gone)
	for o := range r.todo {
		if o.later {
			n++ // its flows are not built yet: at least one
			continue
		}
		if o.isolated() {
			continue
		}
		for i := range o.slots {
			if !o.slots[i].clean() {
				n++
			}
		}
	}
	return n
}

// Flush commits the pending flow_mods in one bundle. On failure nothing
// changed in OVS and the changes stay pending (a later Sync sorts it out).
// Flows the switch refuses isolate their owners, and the rest is sent
// again without them (commit). It returns the number of flow_mods sent.
func (r *Reconciler) Flush(ctx context.Context) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queueRetries()
	if len(r.gone) == 0 && len(r.todo) == 0 {
		return 0, nil
	}
	owners := slices.SortedFunc(maps.Keys(r.todo), byName)
	n, err := r.commit(ctx, func([]flow.Key) []flow.Key {
		return slices.SortedFunc(maps.Keys(r.gone), flow.CompareKeys)
	}, owners)
	if err != nil {
		return 0, err
	}
	clear(r.gone)
	clear(r.todo)
	return n, nil
}

// maxRounds bounds the bundles one Flush or Sync sends: each round after
// the first leaves out the owners whose flows the switch refused in the
// previous one.
const maxRounds = 4

// commit sends the deletes, then the adds of owners, in one bundle. When
// the switch refuses flows, their owners are isolated and the bundle is
// sent again without them; dels gives the deletes of each round (given the
// flows the isolation takes out of OVS). It returns the flow_mods applied.
func (r *Reconciler) commit(ctx context.Context, dels func(more []flow.Key) []flow.Key, owners []*ownerFlows) (int, error) {
	var out []flow.Key
	for round := 1; ; round++ {
		d := dels(out)
		a := r.newAdds(owners)
		err := r.commitOnce(ctx, d, a)
		if err == nil {
			r.recovered(owners)
			return len(d) + a.n, nil
		}
		var refused *RefusedError
		if !errors.As(err, &refused) {
			return 0, err
		}
		more, ok := r.isolate(refused, len(d), a)
		if !ok || round == maxRounds {
			return 0, err
		}
		out = append(out, more...)
	}
}

// commitOnce sends the deletes, then the adds a generates, in one bundle.
func (r *Reconciler) commitOnce(ctx context.Context, dels []flow.Key, a *adds) error {
	mods := func(yield func(*openflow13.FlowMod, error) bool) {
		for _, k := range dels {
			if !yield(k.DeleteStrict(), nil) {
				return
			}
		}
		for fm, err := range a.mods {
			if !yield(fm, err) {
				return
			}
		}
	}
	err := r.cfg.Switch.Commit(ctx, mods)
	a.settle(err == nil)
	if err != nil {
		r.stats.Failures++
		return fmt.Errorf("commit %d deletes and %d adds: %w", len(dels), a.n, err)
	}
	r.stats.Bundles++
	r.stats.FlowMods += uint64(len(dels) + a.n)
	return nil
}

// Installed reports whether OVS holds every flow owner wants, as far as
// the reconciler knows: none of the flows of its last Set was refused or
// waits for a key another owner holds, the switch has not refused any (the
// owner is not isolated), and a Flush or Sync committed them all since (a
// failed commit leaves them pending). An owner without flows is not
// installed. Flows removed from OVS behind the reconciler's back count as
// installed until a Sync finds them missing (and puts them back).
func (r *Reconciler) Installed(owner Owner) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.owners[owner]
	return o != nil && o.refused == 0 && len(o.waits) == 0 && o.fail == nil && !o.dirty()
}

// Stats returns the counters and sizes. It never waits (see noWait).
func (r *Reconciler) Stats() Stats {
	return noWait(r, &r.lastStats, func() Stats {
		s := r.stats
		// Counting pending adds walks the slots of the owners in todo: few
		// after the first Sync, every flow before it.
		s.DesiredFlows, s.PendingFlows, s.Failing = len(r.byKey), r.pendingLocked(), len(r.failing)
		for _, ws := range r.waiters {
			s.WaitingFlows += len(ws)
		}
		return s
	})
}
