package reconcile

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
)

// SyncResult says what Sync found in OVS and what it changed.
type SyncResult struct {
	Kept     int // flows already right
	Added    int // desired flows that were missing
	Modified int // flows with the right match but wrong actions or cookie
	Deleted  int // stale or foreign flows removed from our tables
	Duration time.Duration
}

// Changed is the number of flow_mods Sync sent.
func (s SyncResult) Changed() int { return s.Added + s.Modified + s.Deleted }

// Sync reads the flows of our tables from OVS and commits, in one bundle,
// the flow_mods that make them equal to the desired flows. Flows that are
// already right are not touched (their counters keep running). Pending
// changes are folded in. On success OVS holds exactly the desired flows,
// but none of isolated owners (failure.go): flows the switch refuses
// isolate their owners and the rest is committed without them. The dump is
// compared flow by flow as it arrives; the adds are generated owner by
// owner while the bundle is sent.
func (r *Reconciler) Sync(ctx context.Context) (SyncResult, error) { return r.sync(ctx, nil) }

// sync is Sync, comparing with idx instead of a dump when it is set
// (SyncIndexed).
func (r *Reconciler) sync(ctx context.Context, idx *DumpIndex) (SyncResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := time.Now()
	r.queueRetries()
	var res SyncResult
	for _, o := range r.owners {
		for i := range o.slots {
			o.slots[i].seen = false
		}
	}
	var dels []flow.Key
	var buf []byte
	first := true
	dump := r.cfg.Switch.DumpFlows
	if idx != nil {
		dels = r.compareIndex(idx, &res)
		dump = func(context.Context, func(*flow.Stats) error) error { return nil }
	}
	err := dump(ctx, func(st *flow.Stats) error {
		if first { // OVS holds flows: the owners given with SetLater must be known to compare
			first = false
			r.compileAllLater()
		}
		k := st.Key()
		buf = appendKey(buf[:0], k)
		if o, i := r.slotOf(buf); o != nil && !o.isolated() {
			s := &o.slots[i]
			s.seen, s.installed, s.have = true, true, r.hash(st.Content())
			if s.have == s.want {
				res.Kept++
			} else {
				res.Modified++
			}
			return nil
		}
		dels = append(dels, k) // stale or foreign
		res.Deleted++
		return nil
	})
	if err != nil {
		return SyncResult{}, fmt.Errorf("dump flows: %w", err)
	}
	for _, o := range r.owners {
		for i := range o.slots {
			if s := &o.slots[i]; !s.seen {
				s.installed = false
			}
		}
	}
	owners := r.queueDirty(maps.Values(r.owners))
	slices.SortFunc(dels, flow.CompareKeys)
	if len(dels)+len(owners) > 0 {
		_, err := r.commit(ctx, func(isolated []flow.Key) []flow.Key {
			return slices.SortedFunc(slices.Values(append(slices.Clip(dels), isolated...)), flow.CompareKeys)
		}, owners)
		if err != nil {
			return res, err
		}
	}
	res.Added = r.countAdded()
	clear(r.gone)
	clear(r.todo)
	r.stats.Syncs++
	r.stats.Repairs += uint64(res.Changed())
	res.Duration = time.Since(start)
	r.stats.LastSync = res.Duration
	return res, nil
}

// countAdded counts the flows Sync found missing and installed: those of
// owners not isolated that the dump did not return.
func (r *Reconciler) countAdded() int {
	n := 0
	for _, o := range r.owners {
		if o.isolated() {
			continue
		}
		for i := range o.slots {
			if !o.slots[i].seen {
				n++
			}
		}
	}
	return n
}
