package reconcile_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/contiv/libOpenflow/openflow13"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	. "github.com/ofctl-agent/ofctl-agent/pkg/reconcile"
	"github.com/ofctl-agent/ofctl-agent/pkg/reconcile/reconciletest"
)

// ownerFlows is a test model: owner -> its flows.
type ownerFlows map[Owner][]flow.Flow

func portFlows(owner Owner, inPorts ...uint32) []flow.Flow {
	cookie, _ := strconv.ParseUint(string(owner), 10, 64)
	var out []flow.Flow
	for _, p := range inPorts {
		out = append(out, flow.Flow{Table: 1, Priority: 100, Cookie: cookie,
			Match: flow.NewMatch(flow.FieldInPort.Is(uint64(p))), Actions: []flow.Action{flow.Output{Port: p + 1000}}})
	}
	return out
}

func setup(t *testing.T) (*Reconciler, *reconciletest.Switch, ownerFlows) {
	t.Helper()
	return setupWith(t, Config{})
}

// setupWith fills cfg's Switch and Regenerate.
func setupWith(t *testing.T, cfg Config) (*Reconciler, *reconciletest.Switch, ownerFlows) {
	t.Helper()
	sw := reconciletest.New()
	model := ownerFlows{}
	cfg.Switch, cfg.Regenerate = sw, func(o Owner) []flow.Flow { return model[o] }
	return New(cfg), sw, model
}

func (m ownerFlows) set(t *testing.T, r *Reconciler, o Owner, flows []flow.Flow) {
	t.Helper()
	m[o] = flows
	if errs := r.Set(o, flows); len(errs) > 0 {
		t.Fatal(errs)
	}
}

func flush(t *testing.T, r *Reconciler) int {
	t.Helper()
	n, err := r.Flush(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestIncrementalWorkIsProportionalToChange(t *testing.T) {
	r, sw, model := setup(t)
	for i := uint32(1); i <= 100; i++ {
		o := owner(i)
		model.set(t, r, o, portFlows(o, i*10, i*10+1))
	}
	if n := flush(t, r); n != 200 || len(sw.Flows) != 200 {
		t.Fatalf("initial flush sent %d, switch has %d", n, len(sw.Flows))
	}
	// Same flows again: nothing to send.
	model.set(t, r, "7", portFlows("7", 70, 71))
	if n := flush(t, r); n != 0 {
		t.Fatalf("unchanged owner sent %d flow_mods", n)
	}
	// One owner changes one flow and drops another: 1 add + 1 delete... and
	// the flow it keeps is not touched.
	model.set(t, r, "7", portFlows("7", 70, 72))
	if n := flush(t, r); n != 2 {
		t.Fatalf("changed owner sent %d flow_mods, want 2", n)
	}
	last := sw.Commits[len(sw.Commits)-1]
	if last[0].Command != openflow13.FC_DELETE_STRICT || last[1].Command != openflow13.FC_ADD {
		t.Fatalf("bundle order: deletes must come first: %v, %v", last[0].Command, last[1].Command)
	}
	// Remove an owner.
	model.set(t, r, "8", nil)
	if n := flush(t, r); n != 2 || len(sw.Flows) != 198 {
		t.Fatalf("removal sent %d, switch has %d", n, len(sw.Flows))
	}
}

func TestSyncRepairsDriftAndKeepsGoodFlows(t *testing.T) {
	r, sw, model := setup(t)
	for i := uint32(1); i <= 10; i++ {
		model.set(t, r, owner(i), portFlows(owner(i), i))
	}
	flush(t, r)
	// Out-of-band: one flow deleted, one rogue flow, one flow's actions changed.
	sw.Mu.Lock()
	for k, st := range sw.Flows {
		if st.Cookie == 3 {
			delete(sw.Flows, k)
		}
	}
	sw.Mu.Unlock()
	sw.Add(flow.Flow{Table: 1, Priority: 5, Match: flow.NewMatch(flow.FieldInPort.Is(99))})
	bad := portFlows("5", 5)[0]
	bad.Actions = []flow.Action{flow.Output{Port: 4242}}
	sw.Add(bad)

	res, err := r.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Added != 1 || res.Deleted != 1 || res.Modified != 1 || res.Kept != 8 {
		t.Fatalf("sync result %+v", res)
	}
	if len(sw.Flows) != 10 {
		t.Fatalf("switch has %d flows after sync", len(sw.Flows))
	}
	for _, f := range model["5"] {
		if got := sw.Flows[f.Key()]; got.Content() != f.Content() {
			t.Fatal("modified flow not restored")
		}
	}
	if res, err := r.Sync(context.Background()); err != nil || res.Changed() != 0 {
		t.Fatalf("second sync changed %d (%v)", res.Changed(), err)
	}
}

func TestSyncAfterSwitchLostEverything(t *testing.T) {
	r, sw, model := setup(t)
	for i := uint32(1); i <= 5; i++ {
		model.set(t, r, owner(i), portFlows(owner(i), i))
	}
	flush(t, r)
	sw.Flows = map[flow.Key]flow.Stats{} // ovs-vswitchd restarted
	res, err := r.Sync(context.Background())
	if err != nil || res.Added != 5 || len(sw.Flows) != 5 {
		t.Fatalf("sync %+v err %v, switch has %d", res, err, len(sw.Flows))
	}
}

func TestFailedCommitKeepsChangesPending(t *testing.T) {
	r, sw, model := setup(t)
	model.set(t, r, "1", portFlows("1", 1, 2))
	sw.FailNext = true
	if _, err := r.Flush(context.Background()); err == nil {
		t.Fatal("flush did not report the failed bundle")
	}
	if len(sw.Flows) != 0 || r.Pending() != 2 {
		t.Fatalf("after failure: switch %d flows, pending %d", len(sw.Flows), r.Pending())
	}
	if n := flush(t, r); n != 2 || len(sw.Flows) != 2 {
		t.Fatalf("retry sent %d, switch has %d", n, len(sw.Flows))
	}
	if s := r.Stats(); s.Failures != 1 || s.Bundles != 1 || s.FlowMods != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestConflictingAndInvalidFlowsAreRefused(t *testing.T) {
	r, sw, model := setup(t)
	model.set(t, r, "1", portFlows("1", 1))
	// Owner 2 claims the same key: refused, owner 1 keeps it.
	model["2"] = portFlows("1", 1)
	if errs := r.Set("2", model["2"]); len(errs) != 1 {
		t.Fatalf("conflict not reported: %v", errs)
	}
	invalid := flow.Flow{Table: 2, Priority: 1, Actions: []flow.Action{flow.GotoTable{Table: 1}}}
	model["3"] = append(portFlows("3", 3), invalid)
	if errs := r.Set("3", model["3"]); len(errs) != 1 {
		t.Fatalf("invalid flow not reported: %v", errs)
	}
	flush(t, r)
	if len(sw.Flows) != 2 {
		t.Fatalf("switch has %d flows, want 2 (owner 1 and owner 3's valid flow)", len(sw.Flows))
	}
	if s := r.Stats(); s.Conflicts != 1 || s.Invalid != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// A flow handed from one owner to another between two flushes is already
// in OVS: nothing is sent for it.
func TestFlowMovingBetweenOwnersIsNotResent(t *testing.T) {
	r, sw, model := setup(t)
	model.set(t, r, "1", portFlows("1", 1, 2))
	flush(t, r)
	moved := portFlows("1", 2) // same key and content, now owner 2's
	model.set(t, r, "1", portFlows("1", 1))
	model.set(t, r, "2", moved)
	if n := flush(t, r); n != 0 || len(sw.Flows) != 2 {
		t.Fatalf("move sent %d flow_mods, switch has %d", n, len(sw.Flows))
	}
	// Removing the new owner deletes it; nothing else changes.
	model.set(t, r, "2", nil)
	if n := flush(t, r); n != 1 || len(sw.Flows) != 1 {
		t.Fatalf("removal sent %d flow_mods, switch has %d", n, len(sw.Flows))
	}
}

// A change of one flow of a large owner sends that flow alone, and Flush
// builds it from the regenerated owner.
func TestOneChangeInLargeOwner(t *testing.T) {
	r, sw, model := setup(t)
	ports := make([]uint32, 200)
	for i := range ports {
		ports[i] = uint32(i + 1)
	}
	model.set(t, r, "1", portFlows("1", ports...))
	if n := flush(t, r); n != 200 {
		t.Fatalf("initial flush sent %d", n)
	}
	changed := portFlows("1", ports...)
	changed[57].Actions = []flow.Action{flow.Output{Port: 4242}}
	model.set(t, r, "1", changed)
	if p := r.Pending(); p != 1 {
		t.Fatalf("pending %d, want 1", p)
	}
	if n := flush(t, r); n != 1 {
		t.Fatalf("one change sent %d flow_mods", n)
	}
	if got := sw.Flows[changed[57].Key()]; got.Content() != changed[57].Content() {
		t.Fatal("changed flow not in the switch")
	}
	if res, err := r.Sync(context.Background()); err != nil || res.Changed() != 0 || res.Kept != 200 {
		t.Fatalf("sync after the change: %+v %v", res, err)
	}
}

// The second flow with a key the owner already gave is refused, and the
// first is what OVS gets, by Flush and by Sync alike.
func TestDuplicateKeyInOneOwner(t *testing.T) {
	r, sw, model := setup(t)
	first, second := portFlows("1", 5)[0], portFlows("1", 5)[0]
	second.Actions = []flow.Action{flow.Output{Port: 4242}}
	model["1"] = []flow.Flow{first, second}
	if errs := r.Set("1", model["1"]); len(errs) != 1 {
		t.Fatalf("duplicate not reported: %v", errs)
	}
	flush(t, r)
	if got := sw.Flows[first.Key()]; got.Content() != first.Content() {
		t.Fatal("the switch does not hold the first flow")
	}
	if res, err := r.Sync(context.Background()); err != nil || res.Changed() != 0 {
		t.Fatalf("sync after the flush: %+v %v", res, err)
	}
}

func owner(i uint32) Owner { return Owner(strconv.Itoa(int(i))) }

// Installed: every flow of the owner committed, none refused.
func TestInstalled(t *testing.T) {
	r, sw, model := setup(t)
	model.set(t, r, "1", portFlows("1", 1, 2))
	if r.Installed("1") {
		t.Fatal("installed before any flush")
	}
	sw.FailNext = true
	if _, err := r.Flush(context.Background()); err == nil || r.Installed("1") {
		t.Fatalf("flush error %v; installed after a failed commit: %v", err, r.Installed("1"))
	}
	flush(t, r)
	if !r.Installed("1") || r.Installed("9") {
		t.Fatalf("installed: owner 1 %v, unknown owner 9 %v", r.Installed("1"), r.Installed("9"))
	}
	model.set(t, r, "1", portFlows("1", 1, 3)) // a change: pending until flushed
	if r.Installed("1") {
		t.Fatal("installed with a change pending")
	}
	flush(t, r)
	// Owner 2 wants a key of owner 1: its other flow is in OVS, the owner
	// is not complete.
	model["2"] = append(portFlows("2", 4), portFlows("1", 1)...)
	if errs := r.Set("2", model["2"]); len(errs) != 1 {
		t.Fatalf("conflict not refused: %v", errs)
	}
	flush(t, r)
	if !r.Installed("1") || r.Installed("2") {
		t.Fatalf("installed: owner 1 %v, owner 2 with a refused flow %v", r.Installed("1"), r.Installed("2"))
	}
	delete(sw.Flows, portFlows("1", 3)[0].Key()) // drift: found by a Sync, which repairs it
	if _, err := r.Sync(context.Background()); err != nil || !r.Installed("1") {
		t.Fatalf("after sync: %v, installed %v", err, r.Installed("1"))
	}
	model.set(t, r, "1", nil)
	if r.Installed("1") {
		t.Fatal("an owner without flows is installed")
	}
}

// heldSwitch is a fake switch whose DumpFlows waits until released: a
// Sync in progress, waiting for OVS.
type heldSwitch struct {
	*reconciletest.Switch
	entered, release chan struct{}
}

func (s heldSwitch) DumpFlows(ctx context.Context, each func(*flow.Stats) error) error {
	s.entered <- struct{}{}
	<-s.release
	return s.Switch.DumpFlows(ctx, each)
}

// Stats serves health and metrics, Failures and Waiting the debug
// endpoints: they must answer while a Sync holds the reconciler waiting
// for OVS, with the values from before the Sync.
func TestReadersDoNotWaitForASync(t *testing.T) {
	sw := heldSwitch{reconciletest.New(), make(chan struct{}, 1), make(chan struct{})}
	model := ownerFlows{}
	r := New(Config{Switch: sw, Regenerate: func(o Owner) []flow.Flow { return model[o] }})
	model.set(t, r, "1", portFlows("1", 10, 11))
	before := r.Stats()
	synced := make(chan error, 1)
	go func() { _, err := r.Sync(context.Background()); synced <- err }()
	<-sw.entered // the Sync holds the reconciler, waiting for the dump
	got := make(chan Stats, 1)
	go func() { r.Failures(); r.Waiting(); got <- r.Stats() }()
	select {
	case s := <-got:
		if s != before {
			t.Errorf("Stats during the Sync = %+v, want the values from before it %+v", s, before)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Stats, Failures or Waiting waited for the Sync to end")
	}
	close(sw.release)
	if err := <-synced; err != nil {
		t.Fatal(err)
	}
	if s := r.Stats(); s.Syncs != 1 || s.DesiredFlows != 2 || s.PendingFlows != 0 {
		t.Errorf("Stats after the Sync = %+v, want 1 sync, 2 desired and none pending", s)
	}
}
