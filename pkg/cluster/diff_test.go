package cluster

import (
	"net"
	"net/netip"
	"reflect"
	"testing"
)

func TestDiff(t *testing.T) {
	pfx := netip.MustParsePrefix
	ip := netip.MustParseAddr
	blue := Network{Name: "blue", VNI: 100, Subnet: pfx("10.100.0.0/16")}
	red := Network{Name: "red", VNI: 200, Subnet: pfx("10.200.0.0/16")}
	red2 := Network{Name: "red", VNI: 201, Subnet: pfx("10.200.0.0/16")}
	green := Network{Name: "green", VNI: 300, Subnet: pfx("10.30.0.0/16")}
	a := Host{Name: "a", TunnelIP: ip("192.0.2.1"), Ranges: map[string]netip.Prefix{"blue": pfx("10.100.1.0/24")}}
	a2 := Host{Name: "a", TunnelIP: ip("192.0.2.1"), Ranges: map[string]netip.Prefix{"blue": pfx("10.100.9.0/24")}}
	b := Host{Name: "b", TunnelIP: ip("192.0.2.2")}
	b2 := Host{Name: "b", TunnelIP: ip("192.0.2.22")}
	c := Host{Name: "c", TunnelIP: ip("192.0.2.3")}
	mac1, _ := net.ParseMAC("02:00:00:00:00:01")
	mac2, _ := net.ParseMAC("02:00:00:00:00:02")
	e1 := RemoteEndpoint{Network: "blue", IP: ip("10.100.2.1"), MAC: mac1, Host: "b"}
	e1moved := RemoteEndpoint{Network: "blue", IP: ip("10.100.2.1"), MAC: mac2, Host: "b"}
	e2 := RemoteEndpoint{Network: "blue", IP: ip("10.100.2.2"), MAC: mac2, Host: "b"}

	tests := []struct {
		name     string
		old, new View
		want     Delta
	}{
		{"both empty", View{}, View{}, Delta{}},
		{"identical", View{Networks: []Network{blue}, Hosts: []Host{a, b}}, View{Networks: []Network{blue}, Hosts: []Host{a, b}, Revision: 9}, Delta{}},
		{"from empty", View{}, View{Networks: []Network{blue, red}, Hosts: []Host{a}},
			Delta{NetworksAdded: []Network{blue, red}, HostsAdded: []Host{a}}},
		{"to empty", View{Networks: []Network{blue, red}, Hosts: []Host{a}}, View{},
			Delta{NetworksRemoved: []Network{blue, red}, HostsRemoved: []Host{a}}},
		{"mixed", View{Networks: []Network{blue, red}, Hosts: []Host{a, b}},
			View{Networks: []Network{green, red2}, Hosts: []Host{a2, b, c}},
			Delta{
				NetworksAdded: []Network{green}, NetworksRemoved: []Network{blue},
				NetworksChanged: []NetworkChange{{red, red2}},
				HostsAdded:      []Host{c}, HostsChanged: []HostChange{{a, a2}},
			}},
		{"tunnel ip change", View{Hosts: []Host{a, b, c}}, View{Hosts: []Host{a, b2, c}},
			Delta{HostsChanged: []HostChange{{b, b2}}}},
		{"endpoints", View{Endpoints: []RemoteEndpoint{e1}}, View{Endpoints: []RemoteEndpoint{e1moved, e2}},
			Delta{EndpointsAdded: []RemoteEndpoint{e2}, EndpointsChanged: []EndpointChange{{e1, e1moved}}}},
		{"endpoint removed", View{Endpoints: []RemoteEndpoint{e1, e2}}, View{Endpoints: []RemoteEndpoint{e2}},
			Delta{EndpointsRemoved: []RemoteEndpoint{e1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Diff(tt.old, tt.new)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Diff:\n got %+v\nwant %+v", got, tt.want)
			}
			if got.Empty() != reflect.DeepEqual(tt.want, Delta{}) {
				t.Errorf("Empty() = %v for %v", got.Empty(), got)
			}
			if back := Diff(tt.new, tt.old); len(back.NetworksAdded) != len(got.NetworksRemoved) || len(back.HostsRemoved) != len(got.HostsAdded) {
				t.Errorf("reverse diff is not the mirror: %v vs %v", back, got)
			}
		})
	}
}

func TestDiffString(t *testing.T) {
	d := Delta{NetworksAdded: make([]Network, 2), HostsChanged: make([]HostChange, 1), EndpointsRemoved: make([]RemoteEndpoint, 3)}
	want := "networks +2 -0 ~0, hosts +0 -0 ~1, endpoints +0 -3 ~0"
	if got := d.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
