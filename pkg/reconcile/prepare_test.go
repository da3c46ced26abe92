package reconcile_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	. "github.com/ofctl-agent/ofctl-agent/pkg/reconcile"
	"github.com/ofctl-agent/ofctl-agent/pkg/reconcile/reconciletest"
)

// TestSyncPreparesLaterOwnersInParallel: a start finding its 1,000 owners'
// flows in OVS (given with SetLater: prepared on every CPU, then compiled
// in order) ends exactly as one with Set would: what OVS holds right is
// kept, a changed flow replaced, a stale one deleted, a bad flow reported
// once; each owner is built once (and the changed one again for its add).
// Run with -race: Regenerate is called
// from several goroutines.
func TestSyncPreparesLaterOwnersInParallel(t *testing.T) {
	const owners = 1000
	sw, model := reconciletest.New(), ownerFlows{}
	for i := uint32(1); i <= owners; i++ {
		model[owner(i)] = portFlows(owner(i), i*10, i*10+1)
	}
	first := New(Config{Switch: sw, Regenerate: func(o Owner) []flow.Flow { return model[o] }})
	for o, fs := range model {
		if errs := first.Set(o, fs); errs != nil {
			t.Fatal(errs)
		}
	}
	if n := flush(t, first); n != 2*owners {
		t.Fatalf("installed %d flows, want %d", n, 2*owners)
	}

	model[owner(5)] = portFlows(owner(5), 50, 52) // in_port=51 stale, 52 new
	bad := flow.Flow{Table: 1, Priority: 100, Match: flow.NewMatch(flow.FieldIPv4Dst.Is(1)), Actions: []flow.Action{flow.Output{Port: 1}}}
	model[owner(7)] = append(portFlows(owner(7), 70, 71), bad)
	var built [owners + 1]atomic.Int32
	var laterErrs []error
	r := New(Config{Switch: sw,
		Regenerate: func(o Owner) []flow.Flow {
			for i := uint32(1); i <= owners; i++ {
				if o == owner(i) {
					built[i].Add(1)
				}
			}
			return model[o]
		},
		OnLaterErrors: func(_ Owner, errs []error) { laterErrs = append(laterErrs, errs...) }})
	for i := uint32(1); i <= owners; i++ {
		if errs := r.SetLater(owner(i)); errs != nil {
			t.Fatal(errs)
		}
	}
	res, err := r.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Kept != 2*owners-1 || res.Added != 1 || res.Deleted != 1 || res.Modified != 0 {
		t.Errorf("sync %+v, want %d kept, 1 added, 1 deleted", res, 2*owners-1)
	}
	if len(laterErrs) != 1 || !strings.Contains(laterErrs[0].Error(), "ip_dst needs eth_type") {
		t.Errorf("reported %v, want the bad flow once", laterErrs)
	}
	for i := uint32(1); i <= owners; i++ {
		want := int32(1)
		if i == 5 {
			want = 2 // and again for the bundle with its add
		}
		if n := built[i].Load(); n != want {
			t.Fatalf("owner %d built %d times, want %d", i, n, want)
		}
		if !r.Installed(owner(i)) && i != 7 {
			t.Fatalf("owner %d not installed after the sync", i)
		}
	}
	if got := r.Stats().DesiredFlows; got != 2*owners {
		t.Errorf("%d desired flows, want %d", got, 2*owners)
	}
	if res, err := r.Sync(context.Background()); err != nil || res.Changed() != 0 || res.Kept != 2*owners {
		t.Errorf("second sync %+v %v, want all %d kept", res, err, 2*owners)
	}
}
