package dockerplugin

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/ipam"
)

// TestHostAddresses: the adapter on the host's allocator gives the
// gateway, reserves (picked or wanted), maps the allocator's refusals to
// the plugin's errors, and releases by address.
func TestHostAddresses(t *testing.T) {
	a, err := ipam.New(ipam.Config{Node: "ha"})
	if err != nil {
		t.Fatal(err)
	}
	v := cluster.View{Networks: []cluster.Network{{Name: "blue", VNI: 100, Subnet: netip.MustParsePrefix("10.100.0.0/16")}},
		Hosts: []cluster.Host{
			{Name: "ha", Ranges: map[string]netip.Prefix{"blue": netip.MustParsePrefix("10.100.1.0/30")}},
			{Name: "hb", Ranges: map[string]netip.Prefix{"blue": netip.MustParsePrefix("10.100.2.0/24")}}}}
	gw := netip.MustParseAddr("10.100.1.1")
	a.SetView(v, map[string]netip.Addr{"blue": gw})
	h := NewHostAddresses(a)
	var _ Addresses = h

	if got, err := h.Gateway("blue"); err != nil || got != gw {
		t.Fatalf("gateway %v, %v", got, err)
	}
	if _, err := h.Gateway("red"); err == nil {
		t.Fatal("gateway of an unknown network")
	}
	a.SetView(v, nil) // a host without gateways: no default route, not an error
	if got, err := h.Gateway("blue"); err != nil || got.IsValid() {
		t.Fatalf("gateway without one: %v, %v, want the zero Addr", got, err)
	}
	a.SetView(v, map[string]netip.Addr{"blue": gw})
	first, err := h.Reserve("blue", netip.Addr{})
	if err != nil || first != netip.MustParseAddr("10.100.1.2") {
		t.Fatalf("reserve: %v, %v (want 10.100.1.2: .1 is the gateway)", first, err)
	}
	if _, err := h.Reserve("blue", netip.Addr{}); !errors.Is(err, ErrExhausted) {
		t.Fatalf("full range: %v, want ErrExhausted", err)
	}
	for _, want := range []string{"10.100.1.2", "10.100.2.7", "10.100.1.1"} {
		if _, err := h.Reserve("blue", netip.MustParseAddr(want)); !errors.Is(err, ErrAddressUnavailable) {
			t.Errorf("reserve %s: %v, want ErrAddressUnavailable", want, err)
		}
	}
	h.Own("blue", first, "ep1")
	if l := a.Allocations("blue", ""); len(l) != 1 || l[0].IP != first || l[0].Owner != "docker:ep1" {
		t.Fatalf("after Own: %+v, want %s owned by docker:ep1", l, first)
	}
	h.Own("blue", netip.MustParseAddr("10.100.1.3"), "ep2") // not reserved here: nothing
	if l := a.Allocations("blue", ""); len(l) != 1 {
		t.Fatalf("Own of an address not reserved: %+v", l)
	}
	if err := h.Release("blue", first); err != nil {
		t.Fatal(err)
	}
	if got, err := h.Reserve("blue", first); err != nil || got != first {
		t.Fatalf("after release: %v, %v", got, err)
	}
}
