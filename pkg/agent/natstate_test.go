package agent

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/netfilter"
)

func TestNATState(t *testing.T) {
	pfx, addr := netip.MustParsePrefix, netip.MustParseAddr
	view := cluster.View{
		Networks: []cluster.Network{
			{Name: "blue", VNI: 100, Subnet: pfx("10.100.0.0/16")},
			{Name: "green", VNI: 300, Subnet: pfx("10.30.0.0/16")},
			{Name: "red", VNI: 200, Subnet: pfx("10.200.0.0/16"), NoNAT: true},
		},
		Hosts: []cluster.Host{{Name: "ha", TunnelIP: addr("192.0.2.1")}, {Name: "hb", TunnelIP: addr("192.0.2.2")}},
	}
	ep := func(port, network, ip string, ports string) endpoint.Endpoint {
		ps, err := endpoint.ParsePorts(ports)
		if err != nil {
			t.Fatal(err)
		}
		return endpoint.Endpoint{Port: port, Network: network, IP: addr(ip), Ports: ps}
	}
	gws := map[string]string{"blue": "ofgw-blue", "red": "ofgw-red"}
	tests := []struct {
		name string
		in   natInput
		want string // the state, one item a line
	}{
		{"nothing served", natInput{View: view, TunnelIP: addr("192.0.2.1")},
			"blocked 192.0.2.1/32\nblocked 192.0.2.2/32"},
		{"networks served, nat false is routed", natInput{View: view, Gateways: gws, TunnelIP: addr("192.0.2.1"),
			Underlay: []netip.Prefix{pfx("192.0.2.0/24")}, Allowed: []netip.Prefix{pfx("192.0.2.2/32")}},
			"network blue 10.100.0.0/16 ofgw-blue nat\nnetwork red 10.200.0.0/16 ofgw-red routed\n" +
				"blocked 192.0.2.1/32\nblocked 192.0.2.2/32\nallowed 192.0.2.2/32\nunderlay 192.0.2.0/24"},
		{"this host's tunnel address though the view lacks it", natInput{View: cluster.View{Networks: view.Networks}, TunnelIP: addr("192.0.2.9")},
			"blocked 192.0.2.9/32"},
		{"publishes by endpoint port, then protocol and host port", natInput{View: view, Gateways: gws, Endpoints: []endpoint.Endpoint{
			ep("vc2", "blue", "10.100.1.6", "tcp:8080:80"),
			ep("vc1", "blue", "10.100.1.5", "udp:5353:53,tcp:9090:90,tcp:8080:80"),
			ep("vc3", "green", "10.30.1.5", "tcp:7070:70"), // not served here: the Keeper refuses it
			ep("vc4", "blue", "10.100.1.7", ""),
		}},
			"network blue 10.100.0.0/16 ofgw-blue nat\nnetwork red 10.200.0.0/16 ofgw-red routed\n" +
				"publish tcp/8080 -> 10.100.1.5:80 of \"vc1\"\npublish tcp/9090 -> 10.100.1.5:90 of \"vc1\"\npublish udp/5353 -> 10.100.1.5:53 of \"vc1\"\n" +
				"publish tcp/8080 -> 10.100.1.6:80 of \"vc2\"\npublish tcp/7070 -> 10.30.1.5:70 of \"vc3\"\n" +
				"blocked 192.0.2.1/32\nblocked 192.0.2.2/32"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := natStateText(natState(tc.in)); got != tc.want {
				t.Errorf("state:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// TestNATStateRefusals: what the Keeper refuses of the built state comes
// back to the endpoint that asked: the second endpoint asking for a host
// port, a publish on a network without a gateway here.
func TestNATStateRefusals(t *testing.T) {
	addr := netip.MustParseAddr
	view := cluster.View{Networks: []cluster.Network{{Name: "blue", VNI: 100, Subnet: netip.MustParsePrefix("10.100.0.0/16")},
		{Name: "green", VNI: 300, Subnet: netip.MustParsePrefix("10.30.0.0/16")}}}
	s := natState(natInput{View: view, Gateways: map[string]string{"blue": "ofgw-blue"}, Endpoints: []endpoint.Endpoint{
		{Port: "vc2", Network: "blue", IP: addr("10.100.1.6"), Ports: []endpoint.Published{{Proto: endpoint.TCP, HostPort: 8080, Port: 80}}},
		{Port: "vc1", Network: "blue", IP: addr("10.100.1.5"), Ports: []endpoint.Published{{Proto: endpoint.TCP, HostPort: 8080, Port: 80}}},
		{Port: "vc3", Network: "green", IP: addr("10.30.1.5"), Ports: []endpoint.Published{{Proto: endpoint.UDP, HostPort: 53, Port: 53}}},
	}})
	_, refused := netfilter.Build("", s)
	owners := publishOwners(s)
	var got []string
	for _, err := range refused {
		r := err.(*netfilter.Refusal)
		got = append(got, owners[r.Item]+": "+r.Error())
	}
	want := []string{
		`vc2: publish tcp/8080 -> 10.100.1.6:80 of "vc2": conflict: host port tcp/8080 is taken by "vc1"`,
		`vc3: publish udp/53 -> 10.30.1.5:53 of "vc3": invalid: network "green" is not served (unknown or refused)`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("refusals:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func natStateText(s netfilter.State) string {
	var lines []string
	for _, n := range s.Networks {
		mode := "nat"
		if n.Routed {
			mode = "routed"
		}
		lines = append(lines, fmt.Sprintf("network %s %s %s %s", n.Name, n.Subnet, n.Gateway, mode))
	}
	for _, p := range s.Publishes {
		lines = append(lines, p.String())
	}
	for _, kind := range []struct {
		name string
		list []netip.Prefix
	}{{"blocked", s.Blocked}, {"allowed", s.Allowed}, {"underlay", s.Underlay}} {
		for _, p := range kind.list {
			lines = append(lines, kind.name+" "+p.String())
		}
	}
	return strings.Join(lines, "\n")
}
