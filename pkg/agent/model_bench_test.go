package agent

import (
	"context"
	"fmt"
	"iter"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/contiv/libOpenflow/openflow13"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	"github.com/ofctl-agent/ofctl-agent/pkg/reconcile"
)

// countSwitch is a reconcile.Switch that holds nothing and counts the
// flow_mods committed, so that benchmarks measure the model and the
// reconciler alone.
type countSwitch struct{ mods int }

func (s *countSwitch) DumpFlows(context.Context, func(*flow.Stats) error) error { return nil }

func (s *countSwitch) Commit(_ context.Context, mods iter.Seq2[*openflow13.FlowMod, error]) error {
	for _, err := range mods {
		if err != nil {
			return err
		}
		s.mods++
	}
	return nil
}

// benchView is hosts x perHost remote endpoints in one network, plus this
// host ("self").
func benchView(hosts, perHost int) cluster.View {
	v := cluster.View{Networks: []cluster.Network{{Name: "blue", VNI: 100, Subnet: netip.MustParsePrefix("10.0.0.0/8")}},
		Hosts: []cluster.Host{{Name: "self", TunnelIP: netip.MustParseAddr("192.0.2.1")}}, Revision: 1}
	for h := range hosts {
		name := fmt.Sprintf("h%04d", h)
		v.Hosts = append(v.Hosts, cluster.Host{Name: name, TunnelIP: netip.AddrFrom4([4]byte{172, 16, byte(h >> 8), byte(h)})})
		for j := range perHost {
			n := h*perHost + j + 1
			v.Endpoints = append(v.Endpoints, cluster.RemoteEndpoint{Network: "blue", Host: name,
				IP:  netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)}),
				MAC: net.HardwareAddr{2, 0, 0, byte(n >> 16), byte(n >> 8), byte(n)}})
		}
	}
	v.Normalize()
	return v
}

// benchModel is a model loaded with v and synchronised once.
func benchModel(b *testing.B, v cluster.View) (*model, *reconcile.Reconciler, *countSwitch) {
	b.Helper()
	sw := &countSwitch{}
	var m *model
	rec := reconcile.New(reconcile.Config{Switch: sw, Regenerate: func(o reconcile.Owner) []flow.Flow { return m.regenerate(o) }, Rank: ownerRank})
	m = newModel("self", rec, func(kind string, err error) { b.Fatalf("%s: %v", kind, err) })
	m.setTunnelPort(100, nil)
	m.setView(v, nil)
	if _, err := rec.Sync(context.Background()); err != nil {
		b.Fatal(err)
	}
	return m, rec, sw
}

// BenchmarkModelLoad: the model of 1,000 hosts x 100 endpoints built from
// the first view, and the first Sync generating its 200,000 flow_mods.
func BenchmarkModelLoad(b *testing.B) {
	v := benchView(1000, 100)
	b.ReportAllocs()
	for range b.N {
		_, _, sw := benchModel(b, v)
		b.ReportMetric(float64(sw.mods), "flowmods")
	}
}

// BenchmarkModelEndpointChange: one remote endpoint's MAC changes (a view
// with its delta), at 1,000 hosts x 100 endpoints: its host's owner is
// regenerated (201 flows) by Set and again by Flush, which sends 3
// flow_mods.
func BenchmarkModelEndpointChange(b *testing.B) {
	v := benchView(1000, 100)
	m, rec, sw := benchModel(b, v)
	loaded := sw.mods
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		nv := v
		nv.Revision = v.Revision + 1
		e := v.Endpoints[i%len(v.Endpoints)]
		e.MAC = net.HardwareAddr{2, 1, byte(i >> 16), byte(i >> 8), byte(i), 0}
		nv.Delta = &cluster.Delta{From: v.Revision, EndpointsChanged: []cluster.EndpointChange{{Old: v.Endpoints[i%len(v.Endpoints)], New: e}}}
		m.setView(nv, nil)
		if _, err := rec.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
		v.Revision = nv.Revision
		v.Endpoints[i%len(v.Endpoints)] = e
	}
	b.StopTimer()
	b.ReportMetric(float64(sw.mods-loaded)/float64(b.N), "flowmods/op")
}

// BenchmarkModelHostGone: a host and its 100 endpoints leave the view (a
// lease expiry) and come back, at 1,000 hosts x 100 endpoints.
func BenchmarkModelHostGone(b *testing.B) {
	v := benchView(1000, 100)
	m, rec, _ := benchModel(b, v)
	hi := slices.IndexFunc(v.Hosts, func(h cluster.Host) bool { return h.Name == "h0500" })
	var eps []cluster.RemoteEndpoint
	for _, e := range v.Endpoints {
		if e.Host == "h0500" {
			eps = append(eps, e)
		}
	}
	gone := &cluster.Delta{HostsRemoved: v.Hosts[hi : hi+1], EndpointsRemoved: eps}
	back := &cluster.Delta{HostsAdded: v.Hosts[hi : hi+1], EndpointsAdded: eps}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		nv := v // the lists do not matter: the model applies the delta
		nv.Revision = v.Revision + 1
		d := *map[bool]*cluster.Delta{true: gone, false: back}[i%2 == 0]
		d.From = v.Revision
		nv.Delta = &d
		m.setView(nv, nil)
		if _, err := rec.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
		v.Revision = nv.Revision
	}
}

// BenchmarkModelLocalLoad: the model of 10,000 local endpoints (50,009
// flows) built from the first view, and the first Sync generating them:
// the agent's share of a restart at 10,000 endpoints.
func BenchmarkModelLocalLoad(b *testing.B) {
	v := benchView(0, 0)
	v.Networks[0].Subnet = netip.MustParsePrefix("10.100.0.0/16")
	active := make([]endpoint.Endpoint, 10000)
	for i := range active {
		ip := netip.AddrFrom4([4]byte{10, 100, byte((i + 2) >> 8), byte(i + 2)})
		active[i] = endpoint.Endpoint{Port: fmt.Sprintf("d%d", i), OFPort: uint32(i + 1000), Network: "blue", IP: ip,
			MAC: net.HardwareAddr{0x0a, 0x58, 10, 100, byte((i + 2) >> 8), byte(i + 2)}}
	}
	b.ReportAllocs()
	for range b.N {
		sw := &countSwitch{}
		var m *model
		rec := reconcile.New(reconcile.Config{Switch: sw, Regenerate: func(o reconcile.Owner) []flow.Flow { return m.regenerate(o) }, Rank: ownerRank})
		m = newModel("self", rec, func(kind string, err error) { b.Fatalf("%s: %v", kind, err) })
		m.setTunnelPort(100, nil)
		m.setView(v, active)
		if _, err := rec.Sync(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(sw.mods), "flowmods")
	}
}
