package gateway

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
)

// fakePorts is an OVSDB with ports of one interface each.
type fakePorts struct {
	mu    sync.Mutex
	ports map[string]ovsdb.Interface
	adds  []string
	dels  []string
}

func (f *fakePorts) AddPort(_ context.Context, s ovsdb.PortSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	ext := maps.Clone(s.ExternalIDs)
	if old, ok := f.ports[s.Name]; ok && old.ExternalIDs[endpoint.KeyInstalled] != "" {
		ext[endpoint.KeyInstalled] = old.ExternalIDs[endpoint.KeyInstalled]
	}
	f.ports[s.Name] = ovsdb.Interface{Name: s.Name, Port: s.Name, Type: s.Type, MTURequest: s.MTURequest, ExternalIDs: ext}
	f.adds = append(f.adds, s.Name)
	return nil
}

func (f *fakePorts) DeletePort(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.ports, name)
	f.dels = append(f.dels, name)
	return nil
}

func (f *fakePorts) Interfaces() []ovsdb.Interface {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Collect(maps.Values(f.ports))
}

// fakeLinks: an interface exists once its port does; "wrong" lists ports
// whose interface needs fixing at the next Ensure.
type fakeLinks struct {
	ports *fakePorts
	wrong map[string]bool
	mtus  map[string]int
}

func (l *fakeLinks) Ensure(g Gateway, mtu int) ([]string, error) {
	l.ports.mu.Lock()
	_, ok := l.ports.ports[g.Port]
	l.ports.mu.Unlock()
	if !ok {
		return nil, ErrNoLink
	}
	if l.mtus[g.Port] != mtu || l.wrong[g.Port] {
		l.mtus[g.Port] = mtu
		delete(l.wrong, g.Port)
		return []string{"address"}, nil
	}
	return nil, nil
}

func (l *fakeLinks) Prune([]Gateway) ([]string, error) { return nil, nil }

func TestKeeper(t *testing.T) {
	ports := &fakePorts{ports: map[string]ovsdb.Interface{
		"vc1":       {Name: "vc1", ExternalIDs: map[string]string{endpoint.KeyNetwork: "blue", endpoint.KeyIP: "10.1.0.5"}},
		"ofgw-gone": {Name: "ofgw-gone", Type: "internal", ExternalIDs: map[string]string{endpoint.KeyRole: endpoint.RoleGateway}},
	}}
	links := &fakeLinks{ports: ports, wrong: map[string]bool{}, mtus: map[string]int{}}
	changes := 0
	k := NewKeeper(KeeperConfig{Ports: ports, Links: links, OnChange: func() { changes++ }})
	ctx := context.Background()
	gws, _ := planOne(t)
	k.Set(gws, 1458)

	if !k.Check(ctx) {
		t.Fatal("first check not in sync")
	}
	if _, ok := ports.ports["ofgw-gone"]; ok || !slices.Equal(ports.dels, []string{"ofgw-gone"}) {
		t.Errorf("stale gateway port not deleted alone: deleted %v", ports.dels)
	}
	gw := ports.ports["ofgw-blue"]
	if gw.Type != "internal" || gw.ExternalIDs[endpoint.KeyRole] != "gateway" || gw.ExternalIDs[endpoint.KeyIP] != "10.1.0.1" ||
		gw.ExternalIDs[endpoint.KeyMAC] != "0a:58:0a:01:00:01" || gw.ExternalIDs[endpoint.KeyNetwork] != "blue" {
		t.Errorf("gateway port %+v", gw)
	}
	if s := k.Stats(); !s.InSync || s.Repairs != 0 || s.Gateways != 1 || changes != 1 {
		t.Errorf("stats %+v, changes %d", s, changes)
	}

	// The agent's installed mark is not a difference; nothing is written.
	ports.ports["ofgw-blue"].ExternalIDs[endpoint.KeyInstalled] = "10.1.0.1"
	k.Check(ctx)
	if len(ports.adds) != 1 || changes != 1 {
		t.Errorf("a check with nothing to do wrote: adds %v, changes %d", ports.adds, changes)
	}

	// Deleted by hand: back, counted as a repair.
	_ = ports.DeletePort(ctx, "ofgw-blue")
	if !k.Check(ctx) || len(ports.adds) != 2 || k.Stats().Repairs != 1 {
		t.Errorf("deleted port not repaired: adds %v, stats %+v", ports.adds, k.Stats())
	}
	// Its address removed: repaired.
	links.wrong["ofgw-blue"] = true
	if !k.Check(ctx) || k.Stats().Repairs != 2 {
		t.Errorf("address not repaired: stats %+v", k.Stats())
	}
	// No gateway wanted: its port goes, the endpoint stays.
	k.Set(nil, 1458)
	k.Check(ctx)
	if _, ok := ports.ports["ofgw-blue"]; ok {
		t.Error("unwanted gateway port kept")
	}
	if _, ok := ports.ports["vc1"]; !ok {
		t.Error("an endpoint's port was deleted")
	}
}

func TestKeeperWaitsForTheInterface(t *testing.T) {
	ports := &fakePorts{ports: map[string]ovsdb.Interface{}}
	links := &noLinks{}
	k := NewKeeper(KeeperConfig{Ports: ports, Links: links})
	gws, _ := planOne(t)
	k.Set(gws, 0)
	if k.Check(context.Background()) {
		t.Error("in sync without its interface")
	}
	if s := k.Stats(); s.Failures != 0 || s.InSync {
		t.Errorf("stats %+v: an interface not there yet is no failure, and not in sync", s)
	}
}

type noLinks struct{}

func (noLinks) Ensure(g Gateway, _ int) ([]string, error) { return nil, ErrNoLink }

func (noLinks) Prune([]Gateway) ([]string, error) { return nil, nil }

func planOne(t *testing.T) ([]Gateway, []Problem) {
	t.Helper()
	gws, probs := Plan(viewOne(), "a", nil)
	if len(gws) != 1 || len(probs) != 0 {
		t.Fatalf("plan %v %v", gws, probs)
	}
	return gws, probs
}

func TestContainerMTU(t *testing.T) {
	if got := ContainerMTU(1500); got != 1458 {
		t.Errorf("ContainerMTU(1500) = %d, want 1458", got)
	}
	if got := ContainerMTU(9000); got != 8958 {
		t.Errorf("ContainerMTU(9000) = %d", got)
	}
	if !strings.Contains(PortSpec(Gateway{Port: "x", Addr: netip.MustParsePrefix("10.0.0.1/8")}, 1400).Type, "internal") {
		t.Error("gateway port not internal")
	}
}
