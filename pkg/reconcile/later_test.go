package reconcile_test

import (
	"context"
	"strings"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	. "github.com/ofctl-agent/ofctl-agent/pkg/reconcile"
	"github.com/ofctl-agent/ofctl-agent/pkg/reconcile/reconciletest"
)

// TestSetLater: owners given with SetLater are built when a Flush or Sync
// reaches them, once, and end up exactly as with Set: installed, kept by a
// Sync that finds them in OVS, their bad flows reported.
func TestSetLater(t *testing.T) {
	var laterErrs []error
	regen := map[Owner]int{}
	sw, model := reconciletest.New(), ownerFlows{}
	for i := uint32(1); i <= 50; i++ {
		model[owner(i)] = portFlows(owner(i), i*10, i*10+1)
	}
	count := func(o Owner) []flow.Flow { regen[o]++; return model[o] }
	r := New(Config{Switch: sw, Regenerate: count, OnLaterErrors: func(_ Owner, errs []error) { laterErrs = append(laterErrs, errs...) }})

	t.Run("flush builds each owner once", func(t *testing.T) {
		for i := uint32(1); i <= 50; i++ {
			if errs := r.SetLater(owner(i)); errs != nil {
				t.Fatal(errs)
			}
		}
		if len(regen) != 0 || r.Installed("7") || r.Pending() == 0 {
			t.Fatalf("before the flush: %d owners built, installed %v, pending %d", len(regen), r.Installed("7"), r.Pending())
		}
		if n := flush(t, r); n != 100 || len(sw.Flows) != 100 {
			t.Fatalf("flush sent %d, switch has %d, want 100", n, len(sw.Flows))
		}
		for o, n := range regen {
			if n != 1 {
				t.Errorf("owner %s built %d times", o, n)
			}
		}
		if !r.Installed("7") || r.Pending() != 0 {
			t.Errorf("after the flush: installed %v, pending %d", r.Installed("7"), r.Pending())
		}
	})

	t.Run("sync keeps what OVS holds", func(t *testing.T) {
		r2 := New(Config{Switch: sw, Regenerate: count})
		for i := uint32(1); i <= 50; i++ {
			r2.SetLater(owner(i))
		}
		model[owner(51)] = portFlows(owner(51), 510)
		r2.SetLater(owner(51))
		res, err := r2.Sync(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if res.Kept != 100 || res.Added != 1 || res.Deleted+res.Modified != 0 {
			t.Errorf("sync %+v, want 100 kept, 1 added", res)
		}
		delete(model, owner(51)) // r does not know it: gone again
		r2.Set(owner(51), nil)
		flush(t, r2)
	})

	t.Run("known owner is set at once", func(t *testing.T) {
		model["7"] = portFlows("7", 70, 72)
		if errs := r.SetLater("7"); errs != nil {
			t.Fatal(errs)
		}
		if r.Installed("7") {
			t.Error("changed owner still installed before the flush")
		}
		if n := flush(t, r); n != 2 {
			t.Errorf("flush sent %d flow_mods, want 2 (one add, one delete)", n)
		}
	})

	t.Run("a deleted flow taken by a later owner", func(t *testing.T) {
		k := portFlows("8", 80)[0].Key()
		model.set(t, r, "8", portFlows("8", 81)) // gives up in_port=80: pending delete
		model["60"] = portFlows("8", 80)         // wants the same flow
		r.SetLater("60")
		flush(t, r) // deletes it (8's), then adds it (60's)
		if _, ok := sw.Get(k); !ok {
			t.Errorf("in_port=80 is not in OVS")
		}
		if res, err := r.Sync(context.Background()); err != nil || res.Changed() != 0 {
			t.Errorf("sync after: %+v %v, want nothing to change", res, err)
		}
	})

	t.Run("bad flows reported", func(t *testing.T) {
		bad := flow.Flow{Table: 1, Priority: 100, Match: flow.NewMatch(flow.FieldIPv4Dst.Is(1)), Actions: []flow.Action{flow.Output{Port: 1}}}
		model["61"] = append(portFlows("61", 610), bad)
		r.SetLater("61")
		flush(t, r)
		if len(laterErrs) != 1 || !strings.Contains(laterErrs[0].Error(), "ip_dst needs eth_type") {
			t.Errorf("reported %v, want one error for the flow without its prerequisite", laterErrs)
		}
		if _, ok := sw.Get(portFlows("61", 610)[0].Key()); !ok {
			t.Error("the owner's valid flow is not in OVS")
		}
	})
}

// TestFirstFlowOfAKeyWins: an owner giving one key several times gets the
// first flow of it installed, the others refused, whatever their number
// and order (Set and SetLater alike).
func TestFirstFlowOfAKeyWins(t *testing.T) {
	for _, later := range []bool{false, true} {
		var flows []flow.Flow
		for copyNo := range 5 {
			for p := uint32(1); p <= 40; p++ { // 40 keys, 5 flows each: the first with cookie 100
				f := portFlows("1", p)[0]
				f.Cookie = uint64(100 + copyNo)
				flows = append(flows, f)
			}
		}
		var errs []error
		sw := reconciletest.New()
		r := New(Config{Switch: sw, Regenerate: func(Owner) []flow.Flow { return flows },
			OnLaterErrors: func(_ Owner, e []error) { errs = append(errs, e...) }})
		if later {
			r.SetLater("1")
		} else {
			errs = r.Set("1", flows)
		}
		flush(t, r)
		if len(errs) != 160 || len(sw.Flows) != 40 {
			t.Fatalf("later %v: %d errors (want 160), %d flows (want 40)", later, len(errs), len(sw.Flows))
		}
		for k, st := range sw.Flows {
			if st.Cookie != 100 {
				t.Errorf("later %v: %v has cookie %d, want the first flow's (100)", later, k, st.Cookie)
			}
		}
	}
}
