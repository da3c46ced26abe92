package agent

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
)

// The networks this host uses, told to a cluster source that loads the
// remote endpoints of some networks only (cluster.Scoper: etcd, scoped by
// default; docs/etcd.md "Flows only where needed"): the networks its
// programmed local endpoints need (model.localNets: their own, gateways
// of routed networks), and those the host's allocator was recently asked
// for an address in (which must exclude the other hosts' claims there).
// The interest is a control signal into the source; the endpoints come
// back in its views, like any other change, and a view says which
// networks are loaded (View.Loaded): an endpoint's installed mark waits
// for its network's (status).

const (
	// allocInterestTTL keeps a network loaded after an allocation in it,
	// until its endpoint takes over (the allocator's own TTL).
	allocInterestTTL = 2 * time.Minute
	// allocLoadWait bounds how long an allocation waits for its network's
	// claims to load (etcd unreachable: it goes ahead with what it has).
	allocLoadWait = 5 * time.Second
	// startLoadWait bounds how long the start waits for the networks of
	// the local endpoints to load before programming.
	startLoadWait = 10 * time.Second
)

// interest is the agent's bookkeeping of the networks of interest.
type interest struct {
	scoper   cluster.Scoper // nil: the source loads everything
	loadWait time.Duration  // allocLoadWait (tests shorten it)

	mu    sync.Mutex
	last  []string             // told to the source, sorted
	alloc map[string]time.Time // network -> last allocation in it
	// view is what the allocator last got (after ipam.SetView): what an
	// allocation waits on.
	view cluster.View
}

func newInterest(src cluster.Source) *interest {
	sc, _ := src.(cluster.Scoper)
	return &interest{scoper: sc, loadWait: allocLoadWait, alloc: map[string]time.Time{}}
}

// needsNetwork is the network whose remote endpoints a local endpoint
// needs in view v ("" none): its own, except for a gateway of a network
// with NAT (the outside's replies come back to the host that masqueraded
// them; a routed network's may come to any host's gateway, so it needs
// them).
func needsNetwork(v cluster.View, ep endpoint.Endpoint) string {
	if ep.Gateway {
		if n, ok := v.Network(ep.Network); !ok || !n.NoNAT {
			return ""
		}
	}
	return ep.Network
}

// update tells the source the networks now of interest, if they changed:
// those the model needs and those of recent allocations.
func (a *Agent) updateInterest() {
	in := a.interest
	if in.scoper == nil {
		return
	}
	want := a.model.neededNetworks()
	in.mu.Lock()
	defer in.mu.Unlock()
	now := time.Now()
	for n, at := range in.alloc {
		if now.Sub(at) > allocInterestTTL {
			delete(in.alloc, n)
			continue
		}
		want[n] = true
	}
	nets := slices.Sorted(maps.Keys(want))
	if slices.Equal(nets, in.last) {
		return
	}
	in.last = nets
	a.log.Debug("networks of interest", "networks", nets)
	in.scoper.SetInterest(nets)
}

// startInterest tells the source the networks the active endpoints need,
// before the model is built, and waits (at most startLoadWait) for a view
// that holds them: a restart programs the remote endpoints it had at once,
// instead of removing them until they load.
func (a *Agent) startInterest(ctx context.Context, v cluster.View, active []endpoint.Endpoint) cluster.View {
	in := a.interest
	if in.scoper == nil || !v.Scoped {
		return v
	}
	want := map[string]bool{}
	for _, ep := range active {
		if n := needsNetwork(v, ep); n != "" {
			want[n] = true
		}
	}
	nets := slices.Sorted(maps.Keys(want))
	in.mu.Lock()
	in.last = nets
	in.mu.Unlock()
	in.scoper.SetInterest(nets)
	start := time.Now()
	timeout := time.NewTimer(startLoadWait)
	defer timeout.Stop()
	for !loadedAll(v, nets) {
		select {
		case v = <-a.cfg.Cluster.Updates():
		case <-timeout.C:
			a.log.Warn("the remote endpoints of the networks in use did not load in time; programming without them",
				"networks", nets, "loaded", v.Loaded, "waited", startLoadWait)
			return v
		case <-ctx.Done():
			return v
		}
	}
	a.log.Info("remote endpoints of the networks in use loaded", "networks", len(nets), "endpoints", v.EndpointCount(),
		"took", time.Since(start))
	return v
}

func loadedAll(v cluster.View, nets []string) bool {
	for _, n := range nets {
		if !v.IsLoaded(n) {
			return false
		}
	}
	return true
}

// allocatorView records the view the allocator got.
func (a *Agent) allocatorView(v cluster.View) {
	a.interest.mu.Lock()
	a.interest.view = v
	a.interest.mu.Unlock()
}

// loadForAllocation makes sure the allocator knows the other hosts'
// claims in network before it picks an address there: if the network is
// not loaded it becomes of interest, and the allocation waits (at most
// allocLoadWait) until the allocator has its claims. An allocation keeps
// its network of interest for allocInterestTTL, until its endpoint does.
func (a *Agent) loadForAllocation(ctx context.Context, network string) {
	in := a.interest
	if in.scoper == nil {
		return
	}
	in.mu.Lock()
	in.alloc[network] = time.Now()
	loaded := in.view.IsLoaded(network)
	in.mu.Unlock()
	if loaded {
		return
	}
	a.updateInterest()
	ctx, cancel := context.WithTimeout(ctx, in.loadWait)
	defer cancel()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		in.mu.Lock()
		loaded = in.view.IsLoaded(network)
		in.mu.Unlock()
		if loaded {
			return
		}
		select {
		case <-ctx.Done():
			a.log.Warn("allocating without the other hosts' claims of the network: they did not load in time",
				"network", network, "waited", in.loadWait)
			return
		case <-t.C:
		}
	}
}
