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
}
