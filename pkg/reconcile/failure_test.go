package reconcile_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/contiv/libOpenflow/openflow13"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	. "github.com/ofctl-agent/ofctl-agent/pkg/reconcile"
	"github.com/ofctl-agent/ofctl-agent/pkg/reconcile/reconciletest"
)

// badPort is an output the fake switch refuses.
const badPort = 4242

func refuseBadPort(fm *openflow13.FlowMod) error {
	if fm.Command != openflow13.FC_ADD {
		return nil
	}
	st, err := reconciletest.StatsOfFlowMod(fm)
	if err != nil {
		return err
	}
	f, err := st.Flow()
	if err != nil {
		return err
	}
	if slices.Contains(f.Actions, flow.Action(flow.Output{Port: badPort})) {
		return errors.New("OFPET_BAD_ACTION/OFPBAC_BAD_OUT_PORT")
	}
	return nil
}

// failRig is a reconciler on a switch that refuses output:4242, with a
// clock the test moves and a record of OnFailure calls.
type failRig struct {
	r      *Reconciler
	sw     *reconciletest.Switch
	model  ownerFlows
	now    time.Time
	events []string
}

func newFailRig(t *testing.T, mod ...func(*Config)) *failRig {
	f := &failRig{now: time.Unix(1000, 0)}
	cfg := Config{Now: func() time.Time { return f.now },
		OnFailure: func(o Owner, fl *Failure) {
			if fl == nil {
				f.events = append(f.events, string(o)+" recovered")
				return
			}
			f.events = append(f.events, string(o)+" failed: "+fl.Reason)
		}}
	for _, m := range mod {
		m(&cfg)
	}
	f.r, f.sw, f.model = setupWith(t, cfg)
	f.sw.Refuse = refuseBadPort
	for i := uint32(1); i <= 3; i++ {
		f.model.set(t, f.r, owner(i), portFlows(owner(i), i*10, i*10+1))
	}
	flush(t, f.r)
	return f
}

// bad gives owner 2 a flow the switch refuses next to a good one.
func (f *failRig) bad(t *testing.T) {
	fs := portFlows("2", 20, 22)
	fs[1].Actions = []flow.Action{flow.Output{Port: badPort}}
	f.model.set(t, f.r, "2", fs)
}

// without asserts the switch holds owners 1 and 3's flows and none of 2's.
func (f *failRig) without2(t *testing.T) {
	t.Helper()
	if len(f.sw.Flows) != 4 {
		t.Fatalf("switch holds %d flows, want owners 1 and 3's four", len(f.sw.Flows))
	}
	for _, o := range []Owner{"1", "3"} {
		for _, fl := range f.model[o] {
			if st, ok := f.sw.Get(fl.Key()); !ok || st.Content() != fl.Content() {
				t.Fatalf("owner %s's %s missing", o, fl)
			}
		}
	}
}

// A flow the switch refuses costs its owner alone: the other owners'
// changes go in, the owner's flows are taken out, Flush succeeds, and the
// failure is reported once, retried with backoff and cleared when the
// switch accepts (issue 13, finding 4).
func TestRefusedFlowIsolatesItsOwner(t *testing.T) {
	f := newFailRig(t)
	f.bad(t)
	f.model.set(t, f.r, "3", portFlows("3", 30, 32)) // a change of another owner in the same flush
	if _, err := f.r.Flush(context.Background()); err != nil {
		t.Fatalf("flush with a refused flow: %v", err)
	}
	f.without2(t)
	fails := f.r.Failures()
	if fl, ok := fails["2"]; !ok || fl.Key != f.model["2"][1].Key() || fl.Flow != f.model["2"][1].String() || !strings.Contains(fl.Reason, "BAD_OUT_PORT") ||
		!fl.NextRetry.Equal(f.now.Add(time.Second)) {
		t.Fatalf("failures %+v", fails)
	}
	if s := f.r.Stats(); s.Failing != 1 || s.Refused != 1 || s.PendingFlows != 0 {
		t.Fatalf("stats %+v", s)
	}
	if res, err := f.r.Sync(context.Background()); err != nil || res.Changed() != 0 {
		t.Fatalf("sync of an isolated owner: %+v %v", res, err)
	}
	// Not due: nothing is sent; due: refused again, the delay doubles, no
	// new report.
	if n := flush(t, f.r); n != 0 || f.r.RetryDue() {
		t.Fatalf("flush before the retry is due sent %d", n)
	}
	f.now = f.now.Add(time.Second)
	if !f.r.RetryDue() {
		t.Fatal("retry not due after RetryAfter")
	}
	flush(t, f.r)
	f.without2(t)
	if fl := f.r.Failures()["2"]; fl.Retries != 1 || !fl.NextRetry.Equal(f.now.Add(2*time.Second)) {
		t.Fatalf("after a refused retry: %+v", fl)
	}
	// The switch accepts it now: the next retry installs the owner.
	f.sw.Refuse = nil
	f.now = f.now.Add(2 * time.Second)
	flush(t, f.r)
	if len(f.sw.Flows) != 6 || len(f.r.Failures()) != 0 {
		t.Fatalf("after recovery: %d flows, failures %v", len(f.sw.Flows), f.r.Failures())
	}
	want := []string{"2 failed: OFPET_BAD_ACTION/OFPBAC_BAD_OUT_PORT", "2 recovered"}
	if strings.Join(f.events, "|") != strings.Join(want, "|") {
		t.Fatalf("reports %q, want %q", f.events, want)
	}
}

// A Set that changes an isolated owner's flows retries it at the next
// Flush, without waiting for the backoff.
func TestIsolatedOwnerRetriedWhenItChanges(t *testing.T) {
	f := newFailRig(t)
	f.bad(t)
	flush(t, f.r)
	f.model.set(t, f.r, "2", portFlows("2", 20, 23))
	flush(t, f.r)
	if len(f.sw.Flows) != 6 || len(f.r.Failures()) != 0 {
		t.Fatalf("after the fix: %d flows, failures %v", len(f.sw.Flows), f.r.Failures())
	}
}

// On a switch that lost its flows, Sync installs everything but the
// owners it refuses, and succeeds; when the switch names one refused flow
// per bundle (commit-time errors), each round isolates one more owner.
func TestSyncIsolatesRefusedOwners(t *testing.T) {
	for _, first := range []bool{false, true} {
		f := newFailRig(t)
		f.sw.Refuse = nil
		f.bad(t)
		fs := portFlows("4", 40)
		fs[0].Actions = []flow.Action{flow.Output{Port: badPort}}
		f.model.set(t, f.r, "4", fs)
		flush(t, f.r)
		f.sw.Flows = map[flow.Key]flow.Stats{} // ovs-vswitchd restarted
		f.sw.Refuse, f.sw.RefuseFirst = refuseBadPort, first
		res, err := f.r.Sync(context.Background())
		if err != nil {
			t.Fatalf("first=%v: sync: %v", first, err)
		}
		f.without2(t)
		if s := f.r.Stats(); s.Failing != 2 || s.Refused != 2 || res.Added != 4 {
			t.Fatalf("first=%v: stats %+v, sync %+v", first, s, res)
		}
	}
}

// Bundles are bounded: when every round is refused, Flush gives up after
// a few rounds, with the owners isolated so far left out of the next one.
func TestRefusalRoundsAreBounded(t *testing.T) {
	f := newFailRig(t)
	f.sw.RefuseFirst = true
	for i := uint32(5); i <= 10; i++ {
		fs := portFlows(owner(i), i*10)
		fs[0].Actions = []flow.Action{flow.Output{Port: badPort}}
		f.model.set(t, f.r, owner(i), fs)
	}
	before := f.r.Stats().Failures
	_, err := f.r.Flush(context.Background())
	var refused *RefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("flush: %v, want a refusal after the last round", err)
	}
	if s := f.r.Stats(); s.Failures-before != 4 || s.Failing != 4 {
		t.Fatalf("stats %+v: want 4 bundles and 4 owners isolated", s)
	}
	flush(t, f.r) // the last two
	if s := f.r.Stats(); s.Failing != 6 || len(f.sw.Flows) != 6 {
		t.Fatalf("stats %+v, %d flows", s, len(f.sw.Flows))
	}
}

// A key that passes to an isolated owner when its holder lets go leaves
// OVS at the next Flush, not at the owner's next retry: none of an
// isolated owner's flows stays there.
func TestKeyPassingToAnIsolatedOwnerLeavesOVS(t *testing.T) {
	f := newFailRig(t)
	bad := portFlows("2", 20, 22)
	bad[1].Actions = []flow.Action{flow.Output{Port: badPort}}
	f.model["2"] = append(bad, claim("2", 10, 7)) // owner 1 holds in_port=10: waits
	f.r.Set("2", f.model["2"])
	flush(t, f.r) // owner 2 isolated
	if _, ok := f.r.Failures()["2"]; !ok || f.r.RetryDue() {
		t.Fatal("owner 2 not isolated, or its retry due already")
	}
	f.model.set(t, f.r, "1", portFlows("1", 11)) // owner 1 lets in_port=10 go
	flush(t, f.r)
	holds(t, f.sw, 10, 0)
}
