package pipeline

import (
	"net"
	"net/netip"
)

// Reference returns the reference topology that docs/pipeline.md describes
// and testdata/reference.golden holds the flows of: networks blue (VNI 100,
// 10.1.0.0/16) and red (VNI 200, 10.2.0.0/16); two local endpoints in each
// (vblue-b with a MAC not derived from its IP); tunnel port 100; remote
// hosts h2 (blue and red ranges) and h3 (a blue range); two remote
// endpoints known individually. Tests of every package that reads flows
// (the pipeline, the debug API) share it, so their goldens and captured
// traces describe the same switch.
func Reference() State {
	hw := func(b ...byte) net.HardwareAddr { return net.HardwareAddr(b) }
	ip := netip.MustParseAddr
	pfx := netip.MustParsePrefix
	return State{
		TunnelPort: 100,
		Networks: []Network{
			{Name: "blue", VNI: 100, Subnet: pfx("10.1.0.0/16")},
			{Name: "red", VNI: 200, Subnet: pfx("10.2.0.0/16")},
		},
		Endpoints: []Endpoint{
			{Network: "blue", Port: "vblue-a", OFPort: 1, MAC: hw(0x0a, 0x58, 10, 1, 1, 2), IP: ip("10.1.1.2")},
			{Network: "blue", Port: "vblue-b", OFPort: 2, MAC: hw(2, 0, 0, 0, 1, 3), IP: ip("10.1.1.3")},
			{Network: "red", Port: "vred-a", OFPort: 3, MAC: hw(0x0a, 0x58, 10, 2, 1, 2), IP: ip("10.2.1.2")},
			{Network: "red", Port: "vred-b", OFPort: 4, MAC: hw(0x0a, 0x58, 10, 2, 1, 3), IP: ip("10.2.1.3")},
		},
		Hosts: []RemoteHost{
			{Name: "h2", TunnelIP: ip("192.0.2.2"), Ranges: map[string]netip.Prefix{
				"blue": pfx("10.1.2.0/24"), "red": pfx("10.2.2.0/24")}},
			{Name: "h3", TunnelIP: ip("192.0.2.3"), Ranges: map[string]netip.Prefix{
				"blue": pfx("10.1.3.0/25")}},
		},
		RemoteEndpoints: []RemoteEndpoint{
			{Network: "blue", IP: ip("10.1.4.7"), MAC: hw(2, 0, 0, 0, 4, 7), Host: "h3"},
			{Network: "red", IP: ip("10.2.4.9"), MAC: hw(0x0a, 0x58, 10, 2, 4, 9), Host: "h2"},
		},
	}
}
