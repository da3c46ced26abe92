package gateway

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
)

func TestPortName(t *testing.T) {
	for _, tc := range []struct{ network, want string }{
		{"blue", "ofgw-blue"},
		{"0123456789", "ofgw-0123456789"},
		{"production-frontend", "ofgw-pr~"},
		{"production-backend", "ofgw-pr~"},
	} {
		got := PortName(tc.network)
		if !strings.HasPrefix(got, tc.want) || len(got) > 15 || got != PortName(tc.network) {
			t.Errorf("PortName(%q) = %q, want %q... of at most 15 characters, the same every call", tc.network, got, tc.want)
		}
	}
	if a, b := PortName("production-frontend"), PortName("production-backend"); a == b {
		t.Errorf("two long names give one port name %q", a)
	}
	if got := PortName("production-frontend"); len(got) != 15 {
		t.Errorf("shortened name %q is not 15 characters", got)
	}
}

func TestPlan(t *testing.T) {
	pfx, ip := netip.MustParsePrefix, netip.MustParseAddr
	view := cluster.View{
		Networks: []cluster.Network{
			{Name: "blue", VNI: 100, Subnet: pfx("10.100.0.0/16")},
			{Name: "etcdnet", VNI: 400, Subnet: pfx("10.40.0.0/16")},
			{Name: "green", VNI: 300, Subnet: pfx("10.30.0.0/16")},
			{Name: "red", VNI: 200, Subnet: pfx("10.200.0.0/16"), NoGateway: true},
			{Name: "tiny", VNI: 500, Subnet: pfx("10.50.0.0/24")},
		},
		Hosts: []cluster.Host{
			{Name: "a", Ranges: map[string]netip.Prefix{"blue": pfx("10.100.1.0/24"), "red": pfx("10.200.1.0/24"),
				"green": pfx("10.30.1.0/24"), "tiny": pfx("10.50.0.7/32")},
				Gateways: map[string]netip.Addr{"green": ip("10.30.1.200")}},
			{Name: "b", Ranges: map[string]netip.Prefix{"blue": pfx("10.100.2.0/24")}},
		},
	}
	for _, tc := range []struct {
		name       string
		node       string
		configured map[string]netip.Addr
		want       []string
		problems   []string
	}{
		{name: "defaults and the view's address", node: "a", want: []string{
			"gateway blue 10.100.1.1/16 (ofgw-blue, 0a:58:0a:64:01:01)",
			"gateway green 10.30.1.200/16 (ofgw-green, 0a:58:0a:1e:01:c8)",
			"gateway tiny 10.50.0.7/24 (ofgw-tiny, 0a:58:0a:32:00:07)"}},
		{name: "another host", node: "b", want: []string{"gateway blue 10.100.2.1/16 (ofgw-blue, 0a:58:0a:64:02:01)"}},
		{name: "configured (etcd mode)", node: "c", configured: map[string]netip.Addr{"etcdnet": ip("10.40.3.1")},
			want: []string{"gateway etcdnet 10.40.3.1/16 (ofgw-etcdnet, 0a:58:0a:28:03:01)"}},
		{name: "the view wins over the configuration", node: "a", configured: map[string]netip.Addr{"green": ip("10.30.1.9")},
			want: []string{"gateway blue 10.100.1.1/16", "gateway green 10.30.1.200/16", "gateway tiny 10.50.0.7/24"}},
		{name: "configured outside the range", node: "b", configured: map[string]netip.Addr{"blue": ip("10.100.3.1")},
			problems: []string{"gateway of network blue: 10.100.3.1: 10.100.3.1 is outside the host's range 10.100.2.0/24"}},
		{name: "configured for a gateway: false network and an unknown one", node: "c",
			configured: map[string]netip.Addr{"red": ip("10.200.9.1"), "nope": ip("10.9.9.9"), "etcdnet": ip("10.40.0.0")},
			problems:   []string{"network etcdnet: 10.40.0.0: 10.40.0.0 is the network address of 10.40.0.0/16", "network nope: 10.9.9.9: no such network"}},
		{name: "unknown host, nothing configured", node: "z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gws, probs := Plan(view, tc.node, tc.configured)
			if len(gws) != len(tc.want) {
				t.Fatalf("gateways %v, want %v", gws, tc.want)
			}
			for i, g := range gws {
				if !strings.HasPrefix(g.String(), tc.want[i]) {
					t.Errorf("gateway %d: %s, want %s", i, g, tc.want[i])
				}
				if g.Port != PortName(g.Network) || g.IP() != g.Addr.Addr() {
					t.Errorf("gateway %d: port %s, ip %s", i, g.Port, g.IP())
				}
			}
			if len(probs) != len(tc.problems) {
				t.Fatalf("problems %v, want %v", probs, tc.problems)
			}
			for i, p := range probs {
				if !strings.Contains(p.Error(), tc.problems[i]) {
					t.Errorf("problem %d: %v, want %q", i, p, tc.problems[i])
				}
			}
		})
	}
}

func TestPlanIsDeterministic(t *testing.T) {
	v := cluster.View{Networks: []cluster.Network{{Name: "blue", VNI: 1, Subnet: netip.MustParsePrefix("10.0.0.0/8")}},
		Hosts: []cluster.Host{{Name: "a", Ranges: map[string]netip.Prefix{"blue": netip.MustParsePrefix("10.1.0.0/16")}}}}
	a, _ := Plan(v, "a", nil)
	b, _ := Plan(v, "a", nil)
	if len(a) != 1 || !a[0].Equal(b[0]) {
		t.Fatalf("two plans differ: %v %v", a, b)
	}
	if got := Addresses(a); got["blue"] != netip.MustParseAddr("10.1.0.1") {
		t.Errorf("Addresses = %v", got)
	}
}

func TestFirst(t *testing.T) {
	for in, want := range map[string]string{"10.0.1.0/24": "10.0.1.1", "10.0.1.4/30": "10.0.1.5", "10.0.1.4/31": "10.0.1.4", "10.0.1.9/32": "10.0.1.9"} {
		if got := First(netip.MustParsePrefix(in)); got.String() != want {
			t.Errorf("First(%s) = %s, want %s", in, got, want)
		}
	}
}

func viewOne() cluster.View {
	return cluster.View{Networks: []cluster.Network{{Name: "blue", VNI: 1, Subnet: netip.MustParsePrefix("10.0.0.0/8")}},
		Hosts: []cluster.Host{{Name: "a", Ranges: map[string]netip.Prefix{"blue": netip.MustParsePrefix("10.1.0.0/16")}}}}
}
