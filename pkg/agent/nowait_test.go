package agent

import (
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
)

// within fails the test if f has not returned after 5 s.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s waited", what)
	}
}

// What health and metrics read must not wait for the model's lock, which
// the loop holds while the reconciler makes it wait for a Sync (held
// across OVS round trips).
func TestStatusDoesNotWaitForTheModel(t *testing.T) {
	a, err := New(Config{NodeName: "ha", OVSDB: "unix:" + filepath.Join(t.TempDir(), "none.sock"),
		OpenFlow: "unix:" + filepath.Join(t.TempDir(), "none.mgmt"), TunnelPort: "gre0", Cluster: staticSource(t)})
	if err != nil {
		t.Fatal(err)
	}
	a.model.setTunnelPort(100, nil)
	a.model.setView(view(100), nil)
	a.model.setEndpoint(ep("vc1", 11, "blue", "10.100.1.10"))
	a.model.mu.Lock() // the loop, stuck in reconciler.Set behind a Sync
	defer a.model.mu.Unlock()
	within(t, "Status", func() {
		if s := a.Status(); s.Endpoints != 1 || s.Reconcile.DesiredFlows == 0 {
			t.Errorf("status %+v", s)
		}
	})
	within(t, "Ready", func() { _ = a.Ready() })
	within(t, "LocalEndpoints", func() {
		if eps := a.LocalEndpoints(); len(eps) != 1 || eps[0].Port != "vc1" {
			t.Errorf("local endpoints %+v", eps)
		}
	})
	within(t, "Endpoint", func() {
		if _, ok := a.Endpoint("vc1"); !ok {
			t.Error("endpoint vc1 not found")
		}
	})
	within(t, "Desired", func() {
		if len(a.Desired()) == 0 {
			t.Error("no desired flows")
		}
	})
}

// The debug endpoints' desired flows are built once per revision of the
// model, and outside the lock Flush and Sync take to regenerate owners: a
// debug request building every flow must not hold up a flush.
func TestDesiredIsASnapshotPerRevision(t *testing.T) {
	r := newRig(t)
	r.m.setTunnelPort(100, nil)
	r.m.setView(view(100), nil)
	var builds atomic.Int32
	entered, release := make(chan struct{}, 1), make(chan struct{})
	var block atomic.Bool
	r.m.own("slow", "slow", func() []flow.Flow {
		builds.Add(1)
		if block.Load() {
			entered <- struct{}{}
			<-release
		}
		return nil
	})
	r.m.desired()
	if r.m.desired(); builds.Load() != 2 { // Set's build, then the snapshot's
		t.Fatalf("second call rebuilt: %d builds", builds.Load())
	}
	r.m.setEndpoint(ep("vc1", 11, "blue", "10.100.1.10")) // a new revision
	block.Store(true)
	got := make(chan []Owned, 1)
	go func() { got <- r.m.desired() }()
	<-entered // building the new snapshot
	within(t, "regenerate while a snapshot is built", func() {
		if len(r.m.regenerate("fixed")) == 0 {
			t.Error("no fixed flows")
		}
	})
	close(release)
	owned := <-got
	if !slices.ContainsFunc(owned, func(o Owned) bool { return o.Owner == endpointOwner("vc1") && len(o.Flows) > 0 }) {
		t.Errorf("the new snapshot lacks the new endpoint's flows: %d owners", len(owned))
	}
}
