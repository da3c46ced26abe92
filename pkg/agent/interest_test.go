package agent

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
)

// scopedFake is a cluster source that loads networks on demand
// (cluster.Scoper): load decides what a SetInterest does.
type scopedFake struct {
	cluster.Source
	mu   sync.Mutex
	told [][]string
	load func(nets []string)
}

func (f *scopedFake) SetInterest(nets []string) {
	f.mu.Lock()
	f.told = append(f.told, slices.Clone(nets))
	load := f.load
	f.mu.Unlock()
	if load != nil {
		load(nets)
	}
}

func (f *scopedFake) calls() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.told)
}

func newScopedAgent(t *testing.T, f *scopedFake) *Agent {
	t.Helper()
	a, err := New(Config{NodeName: "ha", OVSDB: "unix:" + filepath.Join(t.TempDir(), "none.sock"),
		OpenFlow: "unix:" + filepath.Join(t.TempDir(), "none.mgmt"), TunnelPort: "gre0", Cluster: f,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestAllocationLoadsItsNetwork: with a scoped source, an allocation in a
// network whose claims are not loaded makes it of interest and waits
// until the allocator has them (the loop hands it the view); one in a
// loaded network does not wait; a network that does not load in time
// is allocated in all the same, after the bounded wait; an allocation's
// interest ends after its TTL.
func TestAllocationLoadsItsNetwork(t *testing.T) {
	f := &scopedFake{Source: staticSource(t)}
	a := newScopedAgent(t, f)
	a.interest.loadWait = 300 * time.Millisecond
	v := view(100)
	v.Scoped = true
	a.ipam.SetView(v, nil)
	a.allocatorView(v)
	var loadedAt time.Time
	var loadMu sync.Mutex
	f.load = func(nets []string) {
		if !slices.Contains(nets, "blue") {
			return
		}
		go func() { // the source's load, then the loop's view
			time.Sleep(50 * time.Millisecond)
			lv := v
			lv.Loaded = []string{"blue"}
			a.ipam.SetView(lv, nil)
			loadMu.Lock()
			loadedAt = time.Now()
			loadMu.Unlock()
			a.allocatorView(lv)
		}()
	}
	b, ctx := a.API(), context.Background()
	if _, err := b.Allocate(ctx, agentapi.AllocateRequest{Network: "blue", Owner: "t:1"}); err != nil {
		t.Fatal(err)
	}
	returned := time.Now()
	loadMu.Lock()
	at := loadedAt
	loadMu.Unlock()
	if at.IsZero() || returned.Before(at) {
		t.Fatalf("the allocation returned before blue's claims were loaded (loaded at %v)", at)
	}
	if got := f.calls(); !slices.EqualFunc(got, [][]string{{"blue"}}, slices.Equal[[]string]) {
		t.Fatalf("interest told %q, want [[blue]]", got)
	}
	if _, err := b.Allocate(ctx, agentapi.AllocateRequest{Network: "blue", Owner: "t:2"}); err != nil {
		t.Fatal(err)
	}
	if got := f.calls(); len(got) != 1 {
		t.Errorf("a second allocation in a loaded network told the source again: %q", got)
	}
	start := time.Now()
	if _, err := b.Allocate(ctx, agentapi.AllocateRequest{Network: "red", Owner: "t:3"}); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Errorf("red never loads, yet the allocation waited only %v", waited)
	}
	if got := f.calls(); !slices.Equal(got[len(got)-1], []string{"blue", "red"}) {
		t.Errorf("interest told %q, want [blue red] last", got)
	}
	a.interest.mu.Lock()
	a.interest.alloc["red"] = time.Now().Add(-allocInterestTTL - time.Second)
	a.interest.mu.Unlock()
	a.updateInterest()
	if got := f.calls(); !slices.Equal(got[len(got)-1], []string{"blue"}) {
		t.Errorf("after red's allocation's TTL, interest told %q, want [blue] last", got)
	}
}

// TestMarkWaitsForLoad: an endpoint's network must be loaded in the view
// in force before its installed mark (model.loadedFor); a gateway of a
// network with NAT needs none, and an unscoped view holds every network.
func TestMarkWaitsForLoad(t *testing.T) {
	r := newRig(t)
	r.m.scoped = true
	v := view(100)
	v.Scoped, v.Revision = true, 1
	r.m.setTunnelPort(100, nil)
	r.m.setView(v, nil)
	r.m.setEndpoint(ep("p1", 5, "blue", "10.100.1.5"))
	gw := ep("gw-red", 6, "red", "10.200.0.1")
	gw.Gateway = true
	r.m.setEndpoint(gw)
	if r.m.loadedFor("p1") || !r.m.loadedFor("gw-red") {
		t.Fatalf("blue not loaded: p1 %v, red's NAT gateway %v; want false, true", r.m.loadedFor("p1"), r.m.loadedFor("gw-red"))
	}
	if got := r.m.neededNetworks(); len(got) != 1 || !got["blue"] {
		t.Errorf("networks needed %v, want blue alone", got)
	}
	v.Loaded, v.Revision = []string{"blue"}, 2
	r.m.setView(v, nil)
	if !r.m.loadedFor("p1") {
		t.Error("blue loaded, p1 still waits")
	}
	v.Scoped, v.Loaded, v.Revision = false, nil, 3
	r.m.setView(v, nil)
	if !r.m.loadedFor("p1") {
		t.Error("an unscoped view, p1 still waits")
	}
}
