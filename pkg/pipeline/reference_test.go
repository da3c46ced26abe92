package pipeline

import (
	"net"
	"net/netip"
)

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }
func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// reference is the topology of testdata/reference.golden: two networks,
// two local endpoints in each (one with a MAC not derived from its IP), two
// remote hosts with ranges, and two remote endpoints known individually.
func reference() State {
	return State{
		TunnelPort: 100,
		Networks: []Network{
			{Name: "blue", VNI: 100, Subnet: pfx("10.1.0.0/16")},
			{Name: "red", VNI: 200, Subnet: pfx("10.2.0.0/16")},
		},
		Endpoints: []Endpoint{
			{Network: "blue", Port: "vblue-a", OFPort: 1, MAC: mac("0a:58:0a:01:01:02"), IP: addr("10.1.1.2")},
			{Network: "blue", Port: "vblue-b", OFPort: 2, MAC: mac("02:00:00:00:01:03"), IP: addr("10.1.1.3")},
			{Network: "red", Port: "vred-a", OFPort: 3, MAC: mac("0a:58:0a:02:01:02"), IP: addr("10.2.1.2")},
			{Network: "red", Port: "vred-b", OFPort: 4, MAC: mac("0a:58:0a:02:01:03"), IP: addr("10.2.1.3")},
		},
		Hosts: []RemoteHost{
			{Name: "h2", TunnelIP: addr("192.0.2.2"), Ranges: map[string]netip.Prefix{
				"blue": pfx("10.1.2.0/24"), "red": pfx("10.2.2.0/24")}},
			{Name: "h3", TunnelIP: addr("192.0.2.3"), Ranges: map[string]netip.Prefix{
				"blue": pfx("10.1.3.0/25")}},
		},
		RemoteEndpoints: []RemoteEndpoint{
			{Network: "blue", IP: addr("10.1.4.7"), MAC: mac("02:00:00:00:04:07"), Host: "h3"},
			{Network: "red", IP: addr("10.2.4.9"), MAC: mac("0a:58:0a:02:04:09"), Host: "h2"},
		},
	}
}

// standalone is a host without tunnel: one network, two endpoints.
func standalone() State {
	return State{
		Networks: []Network{{Name: "blue", VNI: 100, Subnet: pfx("10.1.0.0/16")}},
		Endpoints: []Endpoint{
			{Network: "blue", Port: "vblue-a", OFPort: 1, MAC: mac("0a:58:0a:01:01:02"), IP: addr("10.1.1.2")},
			{Network: "blue", Port: "vblue-b", OFPort: 2, MAC: mac("0a:58:0a:01:01:03"), IP: addr("10.1.1.3")},
		},
	}
}

var topologies = []struct {
	name  string
	state func() State
}{
	{"reference", reference},
	{"standalone", standalone},
}
