package cluster

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"testing"
)

func setEP(network string, i int, host string) RemoteEndpoint {
	ip := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
	return RemoteEndpoint{Network: network, IP: ip, MAC: net.HardwareAddr{2, 0, 0, 0, byte(i >> 8), byte(i)}, Host: host}
}

// applyRef applies updates to a sorted reference slice the slow way.
func applyRef(ref []RemoteEndpoint, ups []EndpointUpdate) []RemoteEndpoint {
	out := slices.Clone(ref)
	for _, u := range ups {
		out = slices.DeleteFunc(out, func(e RemoteEndpoint) bool { return e.Network == u.Network && e.IP == u.IP })
		if u.New != nil {
			out = append(out, *u.New)
		}
	}
	slices.SortFunc(out, compareEndpoints)
	return out
}

// Random batches of adds, changes and removals give the same list as a
// plain sorted slice, the set before each batch is left as it was, and
// lookups find exactly the members.
func TestEndpointSetMatchesSlice(t *testing.T) {
	for _, tt := range []struct {
		name          string
		start, rounds int
		batch         int
	}{
		{"empty start", 0, 40, 30},
		{"one chunk", 50, 40, 5},
		{"many chunks, small batches", 2000, 60, 3},
		{"many chunks, large batches", 2000, 20, 600},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(tt.start)))
			var ref []RemoteEndpoint
			for i := range tt.start {
				ref = append(ref, setEP([]string{"blue", "red"}[i%2], i/2*3, "h"))
			}
			slices.SortFunc(ref, compareEndpoints)
			s := NewEndpointSet(slices.Clone(ref))
			for round := range tt.rounds {
				seen := map[string]bool{}
				var ups []EndpointUpdate
				for range tt.batch {
					nw := []string{"blue", "red", "green"}[rng.IntN(3)]
					i := rng.IntN(4000)
					e := setEP(nw, i, fmt.Sprintf("h%d", round))
					k := nw + e.IP.String()
					if seen[k] {
						continue
					}
					seen[k] = true
					u := EndpointUpdate{Network: nw, IP: e.IP}
					if rng.IntN(3) > 0 {
						u.New = &e
					}
					ups = append(ups, u)
				}
				slices.SortFunc(ups, func(a, b EndpointUpdate) int {
					return compareEndpoints(RemoteEndpoint{Network: a.Network, IP: a.IP}, RemoteEndpoint{Network: b.Network, IP: b.IP})
				})
				before := s.Slice()
				next := s.With(ups)
				want := applyRef(ref, ups)
				if got := next.Slice(); !slices.EqualFunc(got, want, RemoteEndpoint.Equal) || next.Len() != len(want) {
					t.Fatalf("round %d: %d endpoints (Len %d), want %d", round, len(got), next.Len(), len(want))
				}
				if !slices.EqualFunc(s.Slice(), before, RemoteEndpoint.Equal) {
					t.Fatalf("round %d: With changed the set it started from", round)
				}
				for _, c := range next.chunks {
					if len(c) == 0 || len(c) > 2*chunkSize {
						t.Fatalf("round %d: chunk of %d", round, len(c))
					}
				}
				for _, u := range ups {
					e, ok := next.Lookup(u.Network, u.IP)
					if ok != (u.New != nil) || ok && !e.Equal(*u.New) {
						t.Fatalf("round %d: Lookup %s/%s = %v %v, want %v", round, u.Network, u.IP, e, ok, u.New)
					}
				}
				s, ref = next, want
			}
			for _, e := range ref {
				if got, ok := s.Lookup(e.Network, e.IP); !ok || !got.Equal(e) {
					t.Fatalf("Lookup %s/%s: %v %v", e.Network, e.IP, got, ok)
				}
			}
		})
	}
}

// A view holding a set reads like one holding the same list.
func TestViewWithSet(t *testing.T) {
	list := []RemoteEndpoint{setEP("blue", 1, "ha"), setEP("blue", 2, "hb"), setEP("red", 1, "ha")}
	a := View{Endpoints: list}
	b := View{Set: NewEndpointSet(slices.Clone(list))}
	if !a.Equal(b) || !b.Equal(a) || b.EndpointCount() != 3 {
		t.Fatalf("views differ: %v / %v", a.EndpointList(), b.EndpointList())
	}
	c := View{Set: b.Set.With([]EndpointUpdate{{Network: "blue", IP: list[1].IP}})}
	if a.Equal(c) || c.EndpointCount() != 2 {
		t.Fatalf("a removal is not seen: %v", c.EndpointList())
	}
	if d := Diff(a, c); len(d.EndpointsRemoved) != 1 || d.EndpointsRemoved[0].Host != "hb" || len(d.EndpointsAdded)+len(d.EndpointsChanged) != 0 {
		t.Fatalf("Diff = %v", d)
	}
	for _, v := range []View{a, b} {
		if e, ok := v.LookupEndpoint("red", list[2].IP); !ok || e.Host != "ha" {
			t.Errorf("LookupEndpoint red: %v %v", e, ok)
		}
		if _, ok := v.LookupEndpoint("green", list[2].IP); ok {
			t.Error("LookupEndpoint found an endpoint of another network")
		}
	}
}

// An endpoint the compact entry cannot hold (not IPv4, a MAC not 6 bytes
// long) is kept whole, in order, and found.
func TestEndpointSetKeepsOddEndpoints(t *testing.T) {
	odd := []RemoteEndpoint{
		{Network: "blue", IP: netip.MustParseAddr("10.0.0.1"), MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1, 7, 7}, Host: "ha", Name: "eight"},
		setEP("blue", 2, "hb"),
		{Network: "blue", IP: netip.MustParseAddr("fd00::1"), MAC: net.HardwareAddr{2, 0, 0, 0, 0, 3}, Host: "hc"},
	}
	s := NewEndpointSet(odd)
	if got := s.Slice(); !slices.EqualFunc(got, odd, RemoteEndpoint.Equal) {
		t.Fatalf("set holds %v, want %v", got, odd)
	}
	for _, e := range odd {
		if got, ok := s.Lookup(e.Network, e.IP); !ok || !got.Equal(e) {
			t.Errorf("Lookup %s: %v %v", e.IP, got, ok)
		}
	}
	up := setEP("blue", 2, "hz")
	if got, _ := s.With([]EndpointUpdate{{Network: "blue", IP: up.IP, New: &up}}).Lookup("blue", up.IP); got.Host != "hz" {
		t.Errorf("after an update: %v", got)
	}
}
