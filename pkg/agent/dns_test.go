package agent

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
)

// fakeDNS records what the agent serves; SetNetwork fails for networks in
// fail.
type fakeDNS struct {
	served map[string]string // network -> "gateway subnet"
	calls  int
	fail   map[string]bool
}

func (f *fakeDNS) SetNetwork(name string, gw netip.Addr, subnet netip.Prefix) error {
	f.calls++
	if f.fail[name] {
		return errors.New("address in use")
	}
	f.served[name] = gw.String() + " " + subnet.String()
	return nil
}
func (f *fakeDNS) RemoveNetwork(name string) { f.calls++; delete(f.served, name) }
func (f *fakeDNS) Domain() string            { return "ofctl.internal." }

// The resolver serves exactly the networks with a gateway here, at the
// gateway's address, for the view's subnet; unchanged networks are not
// set again; a failure is reported and retried; the local API gives the
// served networks' resolv.conf settings.
func TestServeDNS(t *testing.T) {
	f := &fakeDNS{served: map[string]string{}, fail: map[string]bool{}}
	a := namesAgent(nil)
	a.cfg.DNS = f
	view := func(nets ...string) cluster.View {
		var v cluster.View
		for i, n := range nets {
			v.Networks = append(v.Networks, cluster.Network{Name: n, VNI: uint32(i + 1), Subnet: netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/16", 100+i))})
		}
		return v
	}
	gw := func(pairs ...string) map[string]netip.Addr {
		m := map[string]netip.Addr{}
		for i := 0; i < len(pairs); i += 2 {
			m[pairs[i]] = netip.MustParseAddr(pairs[i+1])
		}
		return m
	}
	steps := []struct {
		what  string
		v     cluster.View
		gws   map[string]netip.Addr
		fail  string
		want  map[string]string
		calls int
		retry bool
	}{
		{"two gateways", view("blue", "red"), gw("blue", "10.100.1.1", "red", "10.101.1.1"),
			"", map[string]string{"blue": "10.100.1.1 10.100.0.0/16", "red": "10.101.1.1 10.101.0.0/16"}, 2, false},
		{"same again: nothing", view("blue", "red"), gw("blue", "10.100.1.1", "red", "10.101.1.1"),
			"", map[string]string{"blue": "10.100.1.1 10.100.0.0/16", "red": "10.101.1.1 10.101.0.0/16"}, 0, false},
		{"red's gateway gone, a gateway outside its subnet ignored", view("blue", "red", "green"), gw("blue", "10.100.1.1", "green", "10.100.9.9"),
			"", map[string]string{"blue": "10.100.1.1 10.100.0.0/16"}, 1, false},
		{"blue moves, red back but failing", view("blue", "red"), gw("blue", "10.100.2.1", "red", "10.101.1.1"),
			"red", map[string]string{"blue": "10.100.2.1 10.100.0.0/16"}, 2, true},
		{"retried, failing the same way: not reported again", view("blue", "red"), gw("blue", "10.100.2.1", "red", "10.101.1.1"),
			"red", map[string]string{"blue": "10.100.2.1 10.100.0.0/16"}, 1, true},
		{"retried", view("blue", "red"), gw("blue", "10.100.2.1", "red", "10.101.1.1"),
			"", map[string]string{"blue": "10.100.2.1 10.100.0.0/16", "red": "10.101.1.1 10.101.0.0/16"}, 1, false},
	}
	for _, s := range steps {
		f.calls, f.fail = 0, map[string]bool{s.fail: s.fail != ""}
		a.serveDNS(s.v, s.gws)
		if !maps.Equal(f.served, s.want) || f.calls != s.calls || a.dns.failed != s.retry {
			t.Errorf("%s: served %v in %d calls, retry %v; want %v in %d, retry %v", s.what, f.served, f.calls, a.dns.failed, s.want, s.calls, s.retry)
		}
	}
	if a.rejects["dns"] != 1 {
		t.Errorf("rejects %v, want one of kind dns", a.rejects)
	}
	d := a.dnsFor("red")
	if d == nil || !slices.Equal(d.Nameservers, []netip.Addr{netip.MustParseAddr("10.101.1.1")}) ||
		!slices.Equal(d.Search, []string{"red.ofctl.internal"}) || !slices.Equal(d.Options, []string{"timeout:1", "attempts:3"}) {
		t.Errorf("dnsFor(red) = %+v", d)
	}
	if d := a.dnsFor("green"); d != nil {
		t.Errorf("dnsFor(green), not served: %+v", d)
	}
}
