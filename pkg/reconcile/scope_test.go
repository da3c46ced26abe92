package reconcile_test

import (
	"context"
	"iter"
	"testing"

	"github.com/contiv/libOpenflow/openflow13"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	. "github.com/ofctl-agent/ofctl-agent/pkg/reconcile"
	"github.com/ofctl-agent/ofctl-agent/pkg/reconcile/reconciletest"
)

// scopeSetup: owners 1..3 with two flows each in table 1 (cookie = owner),
// all installed.
func scopeSetup(t *testing.T) (*Reconciler, *reconciletest.Switch, ownerFlows) {
	t.Helper()
	r, sw, model := setup(t)
	for i := uint32(1); i <= 3; i++ {
		model.set(t, r, owner(i), portFlows(owner(i), i*10, i*10+1))
	}
	flush(t, r)
	return r, sw, model
}

func withActions(f flow.Flow, cookie uint64, out uint32) flow.Flow {
	f.Cookie, f.Actions = cookie, []flow.Action{flow.Output{Port: out}}
	return f
}

func TestSyncScopes(t *testing.T) {
	rogue := flow.Flow{Table: 1, Priority: 300, Match: flow.NewMatch(flow.FieldInPort.Is(7)), Actions: []flow.Action{flow.Output{Port: 1}}}
	tests := []struct {
		name string
		// drift changes the switch behind the reconciler's back and returns
		// the scopes OVS would report.
		drift                   func(sw *reconciletest.Switch, model ownerFlows) []Scope
		added, modified, delete int
	}{
		{"deleted flow restored", func(sw *reconciletest.Switch, m ownerFlows) []Scope {
			k := m["2"][0].Key()
			delete(sw.Flows, k)
			return []Scope{{Table: 1, Cookie: 2, Keys: []flow.Key{k}}}
		}, 1, 0, 0},
		{"the owner's other missing flow restored too", func(sw *reconciletest.Switch, m ownerFlows) []Scope {
			delete(sw.Flows, m["2"][0].Key())
			delete(sw.Flows, m["2"][1].Key())
			return []Scope{{Table: 1, Cookie: 2, Keys: []flow.Key{m["2"][0].Key()}}}
		}, 2, 0, 0},
		{"rogue foreign flow deleted", func(sw *reconciletest.Switch, _ ownerFlows) []Scope {
			sw.Add(rogue)
			return []Scope{{Table: 1, Cookie: 0, Keys: []flow.Key{rogue.Key()}}}
		}, 0, 0, 1},
		{"modified actions put back", func(sw *reconciletest.Switch, m ownerFlows) []Scope {
			sw.Add(withActions(m["3"][1], 3, 9))
			return []Scope{{Table: 1, Cookie: 3, Keys: []flow.Key{m["3"][1].Key()}}}
		}, 0, 1, 0},
		{"changed cookie put back", func(sw *reconciletest.Switch, m ownerFlows) []Scope {
			sw.Add(withActions(m["3"][1], 99, 31+1000))
			return []Scope{{Table: 1, Cookie: 99, Keys: []flow.Key{m["3"][1].Key()}}}
		}, 0, 1, 0},
		{"flow replaced by a foreign one put back", func(sw *reconciletest.Switch, m ownerFlows) []Scope {
			sw.Add(withActions(m["1"][0], 0, 5))
			return []Scope{{Table: 1, Cookie: 0, Keys: []flow.Key{m["1"][0].Key()}}}
		}, 0, 1, 0},
		{"nothing wrong, nothing sent", func(_ *reconciletest.Switch, m ownerFlows) []Scope {
			return []Scope{{Table: 1, Cookie: 1, Keys: []flow.Key{m["1"][0].Key()}}}
		}, 0, 0, 0},
		{"several scopes, one bundle", func(sw *reconciletest.Switch, m ownerFlows) []Scope {
			delete(sw.Flows, m["1"][1].Key())
			sw.Add(rogue)
			sw.Add(withActions(m["2"][0], 2, 77))
			return []Scope{{Table: 1, Cookie: 1, Keys: []flow.Key{m["1"][1].Key()}},
				{Table: 1, Cookie: 0, Keys: []flow.Key{rogue.Key()}}, {Table: 1, Cookie: 2}}
		}, 1, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, sw, model := scopeSetup(t)
			commits := len(sw.Commits)
			scopes := tt.drift(sw, model)
			res, err := r.SyncScopes(context.Background(), scopes)
			if err != nil {
				t.Fatal(err)
			}
			if res.Added != tt.added || res.Modified != tt.modified || res.Deleted != tt.delete {
				t.Fatalf("result %+v, want added %d modified %d deleted %d", res, tt.added, tt.modified, tt.delete)
			}
			wantCommits := commits
			if res.Changed() > 0 {
				wantCommits++
			}
			if len(sw.Commits) != wantCommits {
				t.Fatalf("%d bundles, want %d", len(sw.Commits)-commits, wantCommits-commits)
			}
			if res, err := r.Sync(context.Background()); err != nil || res.Changed() != 0 {
				t.Fatalf("a full Sync after the scoped one still changed %+v (%v)", res, err)
			}
			if st := r.Stats(); st.ScopeSyncs != 1 || st.Repairs != uint64(tt.added+tt.modified+tt.delete) {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestSyncScopesReadsOnlyTheScope: drift outside the scopes stays (the
// periodic full Sync finds it), and pending changes of an owner concerned
// are folded into the bundle.
func TestSyncScopesReadsOnlyTheScope(t *testing.T) {
	r, sw, model := scopeSetup(t)
	outside := flow.Flow{Table: 1, Priority: 300, Cookie: 5, Match: flow.NewMatch(flow.FieldInPort.Is(8)), Actions: []flow.Action{flow.Output{Port: 1}}}
	sw.Add(outside)
	delete(sw.Flows, model["2"][0].Key())
	model.set(t, r, "2", portFlows("2", 20, 21, 22)) // pending, not flushed
	res, err := r.SyncScopes(context.Background(), []Scope{{Table: 1, Cookie: 2, Keys: []flow.Key{model["2"][0].Key()}}})
	if err != nil || res.Added != 1 {
		t.Fatalf("%+v, %v", res, err)
	}
	if _, ok := sw.Flows[outside.Key()]; !ok {
		t.Fatal("a flow outside the scope was touched")
	}
	if _, ok := sw.Flows[model["2"][2].Key()]; !ok || r.Pending() != 0 {
		t.Fatalf("pending add of the owner not folded in (pending %d)", r.Pending())
	}
	if res, err := r.Sync(context.Background()); err != nil || res.Deleted != 1 || res.Changed() != 1 {
		t.Fatalf("full Sync: %+v, %v", res, err)
	}
}

// TestSyncScopesFailedCommit: nothing changes in the switch and the repair
// is still pending for the next Flush.
func TestSyncScopesFailedCommit(t *testing.T) {
	r, sw, model := scopeSetup(t)
	k := model["1"][0].Key()
	delete(sw.Flows, k)
	sw.FailNext = true
	if _, err := r.SyncScopes(context.Background(), []Scope{{Table: 1, Cookie: 1, Keys: []flow.Key{k}}}); err == nil {
		t.Fatal("no error from a failed commit")
	}
	if n := flush(t, r); n != 1 {
		t.Fatalf("flush after the failed repair sent %d flow_mods, want 1", n)
	}
	if _, ok := sw.Flows[k]; !ok {
		t.Fatal("flow not restored")
	}
}

// plainSwitch has no DumpScope.
type plainSwitch struct{}

func (plainSwitch) DumpFlows(context.Context, func(*flow.Stats) error) error { return nil }
func (plainSwitch) Commit(context.Context, iter.Seq2[*openflow13.FlowMod, error]) error {
	return nil
}

func TestSyncScopesNeedsScopedSwitch(t *testing.T) {
	r := New(Config{Switch: plainSwitch{}, Regenerate: func(Owner) []flow.Flow { return nil }})
	if _, err := r.SyncScopes(context.Background(), []Scope{{Table: 1}}); err == nil {
		t.Fatal("no error without DumpScope")
	}
}
