package reconcile_test

import (
	"context"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	. "github.com/ofctl-agent/ofctl-agent/pkg/reconcile"
	"github.com/ofctl-agent/ofctl-agent/pkg/reconcile/reconciletest"
)

// claim is owner o's flow for the key in_port=port: the content (its
// output) tells whose flow the switch holds.
func claim(o Owner, port, out uint32) flow.Flow {
	f := portFlows(o, port)[0]
	f.Actions = []flow.Action{flow.Output{Port: out}}
	return f
}

// holds asserts which content the switch holds for in_port=port: the
// output port, or 0 for no flow.
func holds(t *testing.T, sw *reconciletest.Switch, port, out uint32) {
	t.Helper()
	st, ok := sw.Get(claim("0", port, 0).Key())
	switch {
	case out == 0 && ok:
		t.Fatalf("the switch holds a flow for in_port=%d, want none", port)
	case out == 0:
	case !ok:
		t.Fatalf("the switch holds no flow for in_port=%d, want the one with output:%d", port, out)
	default:
		f, err := st.Flow()
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Actions[0].(flow.Output).Port; got != out {
			t.Fatalf("the switch holds output:%d for in_port=%d, want output:%d", got, port, out)
		}
	}
}

// A flow refused because another owner held its key is installed when
// that owner lets the key go (issue 13, finding 1: it never came back).
func TestWaitingFlowInstalledWhenTheKeyFrees(t *testing.T) {
	for _, release := range []struct {
		name string
		do   func(r *Reconciler, m ownerFlows, t *testing.T)
	}{
		{"holder removed", func(r *Reconciler, m ownerFlows, t *testing.T) { m.set(t, r, "1", nil) }},
		{"holder drops the key", func(r *Reconciler, m ownerFlows, t *testing.T) {
			m.set(t, r, "1", []flow.Flow{claim("1", 8, 801)})
		}},
	} {
		t.Run(release.name, func(t *testing.T) {
			r, sw, model := setup(t)
			model.set(t, r, "1", []flow.Flow{claim("1", 7, 701)})
			model["2"] = []flow.Flow{claim("2", 7, 702), claim("2", 9, 902)}
			if errs := r.Set("2", model["2"]); len(errs) != 1 {
				t.Fatalf("Set of the waiting owner: %v, want one conflict", errs)
			}
			flush(t, r)
			holds(t, sw, 7, 701)
			holds(t, sw, 9, 902)
			if s := r.Stats(); s.WaitingFlows != 1 {
				t.Fatalf("stats %+v: want 1 waiting flow", s)
			}
			release.do(r, model, t)
			flush(t, r)
			holds(t, sw, 7, 702)
			if res, err := r.Sync(context.Background()); err != nil || res.Changed() != 0 {
				t.Fatalf("sync after the handover: %+v %v", res, err)
			}
			if s := r.Stats(); s.WaitingFlows != 0 {
				t.Fatalf("stats %+v: want no waiting flow", s)
			}
		})
	}
}

// Several owners want one key: the strongest (rank, then name) holds it
// whatever the order of their Sets, and the key passes down the order as
// holders let go.
func TestKeyGoesToTheStrongestOwner(t *testing.T) {
	rank := map[Owner]int{"a": 1, "b": 1, "c": 0, "d": 2}
	orders := [][]Owner{{"a", "b", "c", "d"}, {"d", "c", "b", "a"}, {"b", "d", "a", "c"}}
	for _, order := range orders {
		r, sw, model := setupWith(t, Config{Rank: func(o Owner) int { return rank[o] }})
		out := map[Owner]uint32{"a": 1, "b": 2, "c": 3, "d": 4}
		for _, o := range order {
			model[o] = []flow.Flow{claim(o, 7, out[o])}
			r.Set(o, model[o])
			flush(t, r)
		}
		// c (rank 0) holds it, then a and b (rank 1, by name), then d.
		for _, next := range []Owner{"c", "a", "b", "d"} {
			holds(t, sw, 7, out[next])
			model.set(t, r, next, nil)
			flush(t, r)
		}
		holds(t, sw, 7, 0)
		if len(sw.Flows) != 0 {
			t.Fatalf("order %v: %d flows left", order, len(sw.Flows))
		}
	}
}

// A conflict is reported when it starts, not at every Set of the waiting
// owner; a flow its owner no longer gives stops waiting.
func TestWaitingReportedOnceAndWithdrawn(t *testing.T) {
	r, sw, model := setup(t)
	model.set(t, r, "1", []flow.Flow{claim("1", 7, 701)})
	model["2"] = []flow.Flow{claim("2", 7, 702)}
	if errs := r.Set("2", model["2"]); len(errs) != 1 {
		t.Fatalf("first Set: %v", errs)
	}
	if errs := r.Set("2", model["2"]); len(errs) != 0 {
		t.Fatalf("second Set reported again: %v", errs)
	}
	model.set(t, r, "2", []flow.Flow{claim("2", 9, 902)}) // no longer wants in_port=7
	model.set(t, r, "1", nil)
	flush(t, r)
	holds(t, sw, 7, 0)
	holds(t, sw, 9, 902)
	if s := r.Stats(); s.Conflicts != 1 || s.WaitingFlows != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// A stronger owner takes an installed key at once: one flow_mod (the new
// content replaces the old), and the weaker owner's flow is back when it
// lets go.
func TestStrongerOwnerTakesTheKey(t *testing.T) {
	r, sw, model := setupWith(t, Config{Rank: func(o Owner) int { return map[Owner]int{"local": -1}[o] }})
	model.set(t, r, "remote", []flow.Flow{claim("remote", 7, 1)})
	flush(t, r)
	model["local"] = []flow.Flow{claim("local", 7, 2)}
	errs := r.Set("local", model["local"])
	if len(errs) != 1 {
		t.Fatalf("taking the key: %v, want it reported", errs)
	}
	if n := flush(t, r); n != 1 {
		t.Fatalf("%d flow_mods, want 1", n)
	}
	holds(t, sw, 7, 2)
	model.set(t, r, "local", nil)
	flush(t, r)
	holds(t, sw, 7, 1)
}
