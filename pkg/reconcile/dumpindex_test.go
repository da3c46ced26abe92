package reconcile_test

import (
	"context"
	"maps"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	. "github.com/ofctl-agent/ofctl-agent/pkg/reconcile"
	"github.com/ofctl-agent/ofctl-agent/pkg/reconcile/reconciletest"
)

// driftedSwitch is a switch with 20 owners' flows installed and then
// changed while no agent ran: one flow's actions changed, one flow
// deleted, a foreign flow added; and the model in which one owner gave up
// a flow (stale in OVS).
func driftedSwitch(t *testing.T) (*reconciletest.Switch, ownerFlows) {
	sw, model := reconciletest.New(), ownerFlows{}
	for i := uint32(1); i <= 20; i++ {
		model[owner(i)] = portFlows(owner(i), i*10, i*10+1)
	}
	first := New(Config{Switch: sw, Regenerate: func(o Owner) []flow.Flow { return model[o] }})
	for o, fs := range model {
		first.Set(o, fs)
	}
	flush(t, first)
	changed := portFlows(owner(3), 30)[0]
	changed.Actions = []flow.Action{flow.Output{Port: 7}}
	sw.Add(changed)
	sw.Mu.Lock()
	delete(sw.Flows, portFlows(owner(4), 41)[0].Key())
	sw.Mu.Unlock()
	sw.Add(portFlows("99", 990)[0])
	model[owner(5)] = portFlows(owner(5), 50) // in_port=51 is stale
	return sw, model
}

// SyncIndexed, comparing with a dump indexed before the owners were set
// (an agent's start), finds and fixes exactly what Sync does (37 kept, one
// modified, one added, the stale and the foreign flow deleted) and leaves
// OVS the same; a Sync after it has nothing to do. Owners given with Set
// and with SetLater alike.
func TestSyncIndexedMatchesSync(t *testing.T) {
	for _, later := range []bool{false, true} {
		var results [2]SyncResult
		var flows [2]map[flow.Key]flow.Stats
		for k, indexed := range []bool{false, true} {
			sw, model := driftedSwitch(t)
			r := New(Config{Switch: sw, Regenerate: func(o Owner) []flow.Flow { return model[o] }})
			idx, err := r.IndexDump(func(each func(*flow.Stats) error) error { return sw.DumpFlows(context.Background(), each) })
			if err != nil || idx.Len() != 40 {
				t.Fatalf("index of %d flows, %v; want 40", idx.Len(), err)
			}
			for o, fs := range model {
				if later {
					r.SetLater(o)
				} else {
					r.Set(o, fs)
				}
			}
			if indexed {
				results[k], err = r.SyncIndexed(context.Background(), idx)
			} else {
				results[k], err = r.Sync(context.Background())
			}
			if err != nil {
				t.Fatal(err)
			}
			results[k].Duration = 0
			flows[k] = maps.Clone(sw.Flows)
			if res, err := r.Sync(context.Background()); err != nil || res.Changed() != 0 || res.Kept != 39 {
				t.Errorf("later=%v indexed=%v: Sync after: %+v %v, want 39 kept", later, indexed, res, err)
			}
		}
		if want := (SyncResult{Kept: 37, Modified: 1, Added: 1, Deleted: 2}); results[0] != want || results[1] != want {
			t.Errorf("later=%v: Sync %+v, SyncIndexed %+v, want %+v", later, results[0], results[1], want)
		}
		if len(flows[1]) != 39 || !maps.EqualFunc(flows[0], flows[1], func(a, b flow.Stats) bool { return a.Content() == b.Content() }) {
			t.Errorf("later=%v: OVS after SyncIndexed (%d flows) differs from after Sync (%d)", later, len(flows[1]), len(flows[0]))
		}
	}
}
