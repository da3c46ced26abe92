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
// owners concerned. The Reconciler is safe for concurrent use.
package reconcile

import (
	"context"
	"fmt"
	"hash/maphash"
	"iter"
	"maps"
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
	// DumpFlows calls each for every flow in the tables the agent owns, as
	// the switch's replies arrive (the whole table is never held). The
	// Stats and its byte slices are valid only during the call. An error
	// from each ends the dump and is returned.
	DumpFlows(ctx context.Context, each func(*flow.Stats) error) error
	// Commit applies the flow_mods of mods in one atomic, ordered bundle:
	// all or nothing. mods is produced lazily; an error it yields discards
	// the bundle and is returned.
	Commit(ctx context.Context, mods iter.Seq2[*openflow13.FlowMod, error]) error
}

// Config wires a Reconciler.
type Config struct {
	Switch Switch
	// Regenerate returns the current flows of owner (the same flows the
	// last Set for it gave). It is called with the reconciler's lock held
	// (from Flush and Sync): it must not call the Reconciler.
	Regenerate func(owner Owner) []flow.Flow
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
	todo  map[*ownerFlows]struct{}
	stats Stats
}

// Stats counts the reconciler's work since it was made.
type Stats struct {
	FlowMods     uint64        // flow_mods committed
	Bundles      uint64        // bundles committed
	Failures     uint64        // bundles that failed
	Syncs        uint64        // Sync runs
	ScopeSyncs   uint64        // SyncScopes runs (drift reported by OVS)
	Repairs      uint64        // flows Sync had to fix (drift)
	Conflicts    uint64        // flows refused because another owner had the same key
	Invalid      uint64        // flows refused by Validate
	LastSync     time.Duration // duration of the last Sync
	DesiredFlows int           // flows the owners want
	PendingFlows int           // flow_mods waiting for the next Flush
}

// New returns an empty reconciler.
func New(cfg Config) *Reconciler {
	return &Reconciler{cfg: cfg, seed: maphash.MakeSeed(), owners: map[Owner]*ownerFlows{},
		byKey: map[uint64]*ownerFlows{}, gone: map[flow.Key]uint64{}, todo: map[*ownerFlows]struct{}{}}
}

func (r *Reconciler) hash(c flow.Content) uint64 { return maphash.String(r.seed, string(c)) }

// Set replaces the desired flows of owner and queues the flow_mods that
// differ from what is installed. Flows that fail validation, or whose key
// another owner already holds, are refused and returned as errors; the rest
// are kept. Set(owner, nil) removes the owner. The flows are not kept.
func (r *Reconciler) Set(owner Owner, flows []flow.Flow) []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.owners[owner]
	if o == nil {
		if len(flows) == 0 {
			return nil
		}
		o = &ownerFlows{name: owner}
	}
	entries, errs := r.compile(o, flows)
	if !r.replace(o, entries) {
		delete(r.owners, owner)
		delete(r.todo, o)
		return errs
	}
	r.owners[owner] = o
	if o.dirty() {
		r.todo[o] = struct{}{}
	} else {
		delete(r.todo, o)
	}
	return errs
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
// It returns the number of flow_mods sent.
func (r *Reconciler) Flush(ctx context.Context) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.gone) == 0 && len(r.todo) == 0 {
		return 0, nil
	}
	dels := slices.SortedFunc(maps.Keys(r.gone), flow.CompareKeys)
	owners := slices.SortedFunc(maps.Keys(r.todo), byName)
	a := r.newAdds(owners)
	if err := r.commit(ctx, dels, a); err != nil {
		return 0, err
	}
	clear(r.gone)
	clear(r.todo)
	return len(dels) + a.n, nil
}

// commit sends the deletes, then the adds a generates, in one bundle.
func (r *Reconciler) commit(ctx context.Context, dels []flow.Key, a *adds) error {
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

// Stats returns the counters and sizes.
func (r *Reconciler) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	// Counting pending adds walks the slots of the owners in todo: few
	// after the first Sync, every flow before it.
	s.DesiredFlows, s.PendingFlows = len(r.byKey), r.pendingLocked()
	return s
}
