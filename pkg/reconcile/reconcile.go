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
// Only a 64-bit hash of each desired flow's content is kept, not the flow:
// when Sync finds a flow missing it asks the caller to regenerate the
// owner's flows. The Reconciler is safe for concurrent use.
package reconcile

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"
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
	// DumpFlows returns every flow in the tables the agent owns.
	DumpFlows(ctx context.Context) ([]flow.Stats, error)
	// Commit applies the flow_mods in one atomic, ordered bundle: all or
	// nothing.
	Commit(ctx context.Context, mods []*openflow13.FlowMod) error
}

// Config wires a Reconciler.
type Config struct {
	Switch Switch
	// Regenerate returns the current flows of owner (the same flows the
	// last Set for it gave).
	Regenerate func(owner Owner) []flow.Flow
}

type want struct {
	hash  uint64
	owner Owner
}

// op is a pending change of one flow key: an add (flow set) or a delete.
type op struct {
	add  *flow.Flow
	hash uint64
}

// Reconciler owns the desired-versus-installed bookkeeping.
type Reconciler struct {
	mu        sync.Mutex
	cfg       Config
	seed      maphash.Seed
	desired   map[flow.Key]want
	owned     map[Owner][]flow.Key
	installed map[flow.Key]uint64 // what OVS holds, as far as we know
	pending   map[flow.Key]op
	stats     Stats
}

// Stats counts the reconciler's work since it was made.
type Stats struct {
	FlowMods      uint64        // flow_mods committed
	Bundles       uint64        // bundles committed
	Failures      uint64        // bundles that failed
	Syncs         uint64        // Sync runs
	Repairs       uint64        // flows Sync had to fix (drift)
	Conflicts     uint64        // flows refused because another owner had the same key
	Invalid       uint64        // flows refused by Validate
	LastSync      time.Duration // duration of the last Sync
	DesiredFlows  int
	PendingFlows  int
	InstalledKnow int
}

// New returns an empty reconciler.
func New(cfg Config) *Reconciler {
	return &Reconciler{cfg: cfg, seed: maphash.MakeSeed(), desired: map[flow.Key]want{},
		owned: map[Owner][]flow.Key{}, installed: map[flow.Key]uint64{}, pending: map[flow.Key]op{}}
}

func (r *Reconciler) hash(c flow.Content) uint64 { return maphash.String(r.seed, string(c)) }

// Set replaces the desired flows of owner and queues the flow_mods that
// differ from what is installed. Flows that fail validation, or whose key
// another owner already holds, are refused and returned as errors; the rest
// are kept. Set(owner, nil) removes the owner.
func (r *Reconciler) Set(owner Owner, flows []flow.Flow) []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	keep := make([]flow.Key, 0, len(flows))
	mine := make(map[flow.Key]bool, len(flows))
	for i := range flows {
		f := &flows[i]
		if err := f.Validate(); err != nil {
			r.stats.Invalid++
			errs = append(errs, err)
			continue
		}
		k := f.Key()
		if w, ok := r.desired[k]; ok && w.owner != owner {
			r.stats.Conflicts++
			errs = append(errs, fmt.Errorf("flow %q: key already owned by %q", f.String(), w.owner))
			continue
		}
		h := r.hash(f.Content())
		r.desired[k] = want{h, owner}
		keep = append(keep, k)
		mine[k] = true
		r.queue(k, op{add: f, hash: h})
	}
	for _, k := range r.owned[owner] {
		if !mine[k] {
			delete(r.desired, k)
			r.queue(k, op{})
		}
	}
	if len(keep) == 0 {
		delete(r.owned, owner)
	} else {
		r.owned[owner] = keep
	}
	return errs
}

// queue records that key k should end as o (an add or a delete), or drops
// the pending change when OVS already matches.
func (r *Reconciler) queue(k flow.Key, o op) {
	h, have := r.installed[k]
	switch {
	case o.add != nil && have && h == o.hash, o.add == nil && !have:
		delete(r.pending, k)
	default:
		r.pending[k] = o
	}
}

// Pending is the number of flow_mods waiting for Flush.
func (r *Reconciler) Pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending)
}

// Flush commits the pending flow_mods in one bundle. On failure nothing
// changed in OVS and the changes stay pending (a later Sync sorts it out).
// It returns the number of flow_mods sent.
func (r *Reconciler) Flush(ctx context.Context) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) == 0 {
		return 0, nil
	}
	keys := make([]flow.Key, 0, len(r.pending))
	for k := range r.pending {
		keys = append(keys, k)
	}
	mods, err := r.mods(keys, func(k flow.Key) *openflow13.FlowMod { return k.DeleteStrict() })
	if err != nil {
		return 0, err
	}
	if err := r.commit(ctx, mods); err != nil {
		return 0, err
	}
	for _, k := range keys {
		r.record(k, r.pending[k])
	}
	clear(r.pending)
	return len(mods), nil
}

// mods encodes the pending ops of keys: deletes first, then adds, each in
// key order so bundles are deterministic. del builds a delete for a key.
func (r *Reconciler) mods(keys []flow.Key, del func(flow.Key) *openflow13.FlowMod) ([]*openflow13.FlowMod, error) {
	slices.SortFunc(keys, flow.CompareKeys)
	var dels, adds []*openflow13.FlowMod
	for _, k := range keys {
		o := r.pending[k]
		if o.add == nil {
			dels = append(dels, del(k))
			continue
		}
		fm, err := o.add.FlowMod(openflow13.FC_ADD)
		if err != nil {
			return nil, fmt.Errorf("encode %q: %w", o.add.String(), err)
		}
		adds = append(adds, fm)
	}
	return append(dels, adds...), nil
}

func (r *Reconciler) commit(ctx context.Context, mods []*openflow13.FlowMod) error {
	if err := r.cfg.Switch.Commit(ctx, mods); err != nil {
		r.stats.Failures++
		return fmt.Errorf("commit %d flow_mods: %w", len(mods), err)
	}
	r.stats.Bundles++
	r.stats.FlowMods += uint64(len(mods))
	return nil
}

func (r *Reconciler) record(k flow.Key, o op) {
	if o.add == nil {
		delete(r.installed, k)
	} else {
		r.installed[k] = o.hash
	}
}

// Stats returns the counters and sizes.
func (r *Reconciler) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.DesiredFlows, s.PendingFlows, s.InstalledKnow = len(r.desired), len(r.pending), len(r.installed)
	return s
}
