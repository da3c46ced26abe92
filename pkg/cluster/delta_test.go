package cluster

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"reflect"
	"testing"
)

// randomView draws a view from a small universe, so that successive views
// share, change, add and drop networks, hosts and endpoints.
func randomView(r *rand.Rand, rev int64) View {
	v := View{Revision: rev}
	for i := range 3 {
		if r.IntN(3) > 0 {
			v.Networks = append(v.Networks, Network{Name: fmt.Sprintf("n%d", i), VNI: uint32(100 + r.IntN(2)),
				Subnet: netip.MustParsePrefix("10.0.0.0/8")})
		}
	}
	for i := range 4 {
		if r.IntN(3) > 0 {
			v.Hosts = append(v.Hosts, Host{Name: fmt.Sprintf("h%d", i),
				TunnelIP: netip.AddrFrom4([4]byte{192, 0, 2, byte(r.IntN(2))})})
		}
	}
	for i := range 20 {
		if r.IntN(2) > 0 {
			v.Endpoints = append(v.Endpoints, RemoteEndpoint{Network: fmt.Sprintf("n%d", i%2),
				IP: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), MAC: net.HardwareAddr{2, 0, 0, 0, 0, byte(r.IntN(2))},
				Host: fmt.Sprintf("h%d", r.IntN(4))})
		}
	}
	v.Normalize()
	return v
}

// Composing the deltas of successive views gives the delta of the first
// and the last: what Offer relies on when the reader skipped views.
func TestDeltaThenEqualsDiff(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 500 {
		v0, v1, v2 := randomView(r, 1), randomView(r, 2), randomView(r, 3)
		d01, d12 := Diff(v0, v1), Diff(v1, v2)
		got, want := d01.Then(&d12), Diff(v0, v2)
		if !reflect.DeepEqual(*got, want) {
			t.Fatalf("case %d:\n got %+v\nwant %+v", i, *got, want)
		}
	}
	if (*Delta)(nil).Then(&Delta{}) != nil || (&Delta{}).Then(nil) != nil {
		t.Fatal("an unknown delta composed into a known one")
	}
}

func TestOfferComposesSkippedViews(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	ch := make(chan View, 1)
	views := []View{randomView(r, 1), randomView(r, 2), randomView(r, 3), randomView(r, 4)}
	offer := func(i int) {
		d := Diff(views[i-1], views[i])
		v := views[i]
		v.Delta = &d
		Offer(ch, v)
	}
	offer(1)
	if got := <-ch; got.Delta.From != 1 || got.Revision != 2 {
		t.Fatalf("taken view: revision %d from %d", got.Revision, got.Delta.From)
	}
	offer(2)
	offer(3) // the reader skipped revision 3
	got := <-ch
	if want := Diff(views[1], views[3]); got.Revision != 4 || !reflect.DeepEqual(*got.Delta, want) {
		t.Fatalf("after a skipped view: revision %d, delta %+v, want %+v", got.Revision, *got.Delta, want)
	}
}
