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
	{"reference", Reference},
	{"standalone", standalone},
	{"gateway", withGateways},
}

// withGateways is the reference topology with this host's gateways in blue
// (10.1.1.1, the first address of its range 10.1.1.0/24) and red: the
// reference's flows plus each gateway's five.
func withGateways() State {
	s := Reference()
	s.Endpoints = append(s.Endpoints,
		Endpoint{Network: "blue", Port: "ofgw-blue", OFPort: 5, MAC: net.HardwareAddr{0x0a, 0x58, 10, 1, 1, 1}, IP: netip.MustParseAddr("10.1.1.1"), Gateway: true},
		Endpoint{Network: "red", Port: "ofgw-red", OFPort: 6, MAC: net.HardwareAddr{0x0a, 0x58, 10, 2, 1, 1}, IP: netip.MustParseAddr("10.2.1.1"), Gateway: true})
	return s
}
