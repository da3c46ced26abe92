package reconcile

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/contiv/libOpenflow/openflow13"

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
// changes are folded in. On success OVS holds exactly the desired flows.
func (r *Reconciler) Sync(ctx context.Context) (SyncResult, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := time.Now()
	actual, err := r.cfg.Switch.DumpFlows(ctx)
	if err != nil {
		return SyncResult{}, fmt.Errorf("dump flows: %w", err)
	}
	var res SyncResult
	dels := map[flow.Key]*openflow13.FlowMod{}
	present := make(map[flow.Key]uint64, len(actual))
	for i := range actual {
		s := &actual[i]
		k, h := s.Key(), r.hash(s.Content())
		present[k] = h
		w, ok := r.desired[k]
		switch {
		case ok && w.hash == h:
			res.Kept++
		case ok:
			res.Modified++
		default:
			dels[k] = s.DeleteStrict()
			res.Deleted++
		}
	}
	adds, err := r.missing(present, &res)
	if err != nil {
		return res, err
	}
	if len(dels)+len(adds) > 0 {
		mods := make([]*openflow13.FlowMod, 0, len(dels)+len(adds))
		for _, k := range sortedKeys(dels) {
			mods = append(mods, dels[k])
		}
		for _, k := range sortedKeys(adds) {
			mods = append(mods, adds[k])
		}
		if err := r.commit(ctx, mods); err != nil {
			return res, err
		}
	}
	clear(r.installed)
	for k, w := range r.desired {
		r.installed[k] = w.hash
	}
	clear(r.pending)
	r.stats.Syncs++
	r.stats.Repairs += uint64(res.Changed())
	res.Duration = time.Since(start)
	r.stats.LastSync = res.Duration
	return res, nil
}

// missing encodes adds for desired flows that OVS lacks or holds with other
// contents, regenerating only the owners concerned.
func (r *Reconciler) missing(present map[flow.Key]uint64, res *SyncResult) (map[flow.Key]*openflow13.FlowMod, error) {
	need := map[Owner][]flow.Key{}
	for k, w := range r.desired {
		if h, ok := present[k]; ok && h == w.hash {
			continue
		} else if !ok {
			res.Added++
		}
		need[w.owner] = append(need[w.owner], k)
	}
	adds := map[flow.Key]*openflow13.FlowMod{}
	for owner, keys := range need {
		byKey := map[flow.Key]*flow.Flow{}
		flows := r.cfg.Regenerate(owner)
		for i := range flows {
			byKey[flows[i].Key()] = &flows[i]
		}
		for _, k := range keys {
			f, ok := byKey[k]
			if !ok {
				// The owner changed since its last Set; the Set that
				// follows removes the key. Install nothing for it now.
				delete(r.desired, k)
				continue
			}
			fm, err := f.FlowMod(openflow13.FC_ADD)
			if err != nil {
				return nil, fmt.Errorf("encode %q: %w", f.String(), err)
			}
			r.desired[k] = want{r.hash(f.Content()), owner}
			adds[k] = fm
		}
	}
	return adds, nil
}

func sortedKeys[V any](m map[flow.Key]V) []flow.Key {
	keys := make([]flow.Key, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, flow.CompareKeys)
	return keys
}
