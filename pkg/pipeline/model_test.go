package pipeline

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
)

func TestValidate(t *testing.T) {
	for _, tp := range topologies {
		if err := validateState(tp.state()); err != nil {
			t.Errorf("%s: %v", tp.name, err)
		}
	}
	tests := []struct {
		name   string
		mutate func(*State)
		want   string
	}{
		{"duplicate network", func(s *State) { s.Networks = append(s.Networks, s.Networks[0]) }, "defined twice"},
		{"duplicate VNI", func(s *State) { s.Networks[1].VNI = 100 }, "VNI 100 already used by blue"},
		{"VNI 0", func(s *State) { s.Networks[0].VNI = 0 }, "VNI 0 outside"},
		{"VNI too big", func(s *State) { s.Networks[0].VNI = 1 << 24 }, "outside 1..16777215"},
		{"subnet not canonical", func(s *State) { s.Networks[0].Subnet = pfx("10.1.0.1/16") }, "not a canonical IPv4 prefix"},
		{"endpoint unknown network", func(s *State) { s.Endpoints[0].Network = "green" }, `unknown network "green"`},
		{"endpoint outside subnet", func(s *State) { s.Endpoints[0].IP = addr("10.9.0.1") }, "outside network blue"},
		{"multicast MAC", func(s *State) { s.Endpoints[0].MAC = mac("01:00:5e:00:00:01") }, "not a unicast"},
		{"duplicate IP", func(s *State) { s.Endpoints[1].IP = s.Endpoints[0].IP }, "10.1.1.2 already used in network blue"},
		{"duplicate MAC", func(s *State) { s.Endpoints[1].MAC = s.Endpoints[0].MAC }, "already used in network blue by endpoint vblue-a"},
		{"same IP other network", func(s *State) {
			s.Endpoints[2].IP = addr("10.2.1.9")
			s.Networks[1].Subnet = pfx("10.2.0.0/16")
		}, ""},
		{"duplicate port", func(s *State) { s.Endpoints[1].Port = "vblue-a" }, "duplicate port name"},
		{"ofport taken", func(s *State) { s.Endpoints[1].OFPort = 1 }, "ofport 1 is invalid or taken"},
		{"ofport is tunnel", func(s *State) { s.Endpoints[1].OFPort = 100 }, "ofport 100 is invalid or taken"},
		{"remote unknown host", func(s *State) { s.RemoteEndpoints[0].Host = "h9" }, `unknown host "h9"`},
		{"remote duplicates local", func(s *State) { s.RemoteEndpoints[0].IP = addr("10.1.1.2") }, "already used in network blue by endpoint vblue-a"},
		{"host tunnel IP taken", func(s *State) { s.Hosts[1].TunnelIP = s.Hosts[0].TunnelIP }, "is taken"},
		{"range outside subnet", func(s *State) { s.Hosts[0].Ranges["blue"] = pfx("10.9.0.0/24") }, "not inside network"},
		{"range unknown network", func(s *State) { s.Hosts[0].Ranges["green"] = pfx("10.9.0.0/24") }, `not inside network "green"`},
		{"ranges overlap", func(s *State) { s.Hosts[1].Ranges["blue"] = pfx("10.1.2.128/25") }, "overlaps 10.1.2.0/24 of host h2"},
		{"endpoint in remote range", func(s *State) { s.Endpoints[0].IP = addr("10.1.2.9") }, "inside range 10.1.2.0/24 of host h2"},
		{"tunnel port reserved", func(s *State) { s.TunnelPort = 0xfffffffe }, "not an ordinary ofport"},
	}
	for _, tt := range tests {
		s := Reference()
		s.Hosts[0].Ranges = map[string]netip.Prefix{"blue": pfx("10.1.2.0/24"), "red": pfx("10.2.2.0/24")}
		tt.mutate(&s)
		err := validateState(s)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: unexpected %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: got %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

// TestBuildSkipsInvalid checks that Build leaves out what it cannot program
// instead of failing, and never produces a flow OVS would reject.
func TestBuildSkipsInvalid(t *testing.T) {
	s := Reference()
	s.Networks = append(s.Networks, Network{Name: "bad", VNI: 0, Subnet: pfx("10.3.0.0/16")})
	s.Endpoints = append(s.Endpoints,
		Endpoint{Network: "nowhere", Port: "x1", OFPort: 9, MAC: mac("02:00:00:00:00:09"), IP: addr("10.1.1.9")},
		Endpoint{Network: "blue", Port: "x2", OFPort: 10, MAC: nil, IP: addr("10.1.1.10")},
		Endpoint{Network: "blue", Port: "x3", OFPort: 0, MAC: mac("02:00:00:00:00:0b"), IP: addr("10.1.1.11")},
		Endpoint{Network: "bad", Port: "x4", OFPort: 12, MAC: mac("02:00:00:00:00:0c"), IP: addr("10.3.1.1")},
		Endpoint{Network: "blue", Port: "x5", OFPort: 13, MAC: mac("02:00:00:00:00:0d"), IP: netip.Addr{}})
	s.Hosts = append(s.Hosts, RemoteHost{Name: "h9", Ranges: map[string]netip.Prefix{"blue": pfx("10.1.9.0/24")}},
		RemoteHost{Name: "h8", TunnelIP: addr("192.0.2.8"), Ranges: map[string]netip.Prefix{"blue": {}, "red": pfx("10.9.0.0/24")}})
	s.RemoteEndpoints = append(s.RemoteEndpoints, RemoteEndpoint{Network: "blue", IP: addr("10.1.5.5"), MAC: mac("02:00:00:00:05:05"), Host: "h9"})
	got := Build(s)
	if want := len(Build(Reference())) + 1; len(got) != want { // h8: its tunnel flow only
		t.Errorf("Build kept %d flows, want %d:\n%s", len(got), want, flow.Dump(got))
	}
	for _, f := range got {
		if err := f.Validate(); err != nil {
			t.Error(err)
		}
	}
}
