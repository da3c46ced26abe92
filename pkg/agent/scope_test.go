package agent

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
)

// remoteFlowsOf counts the switch's flows that forward to a remote
// endpoint of network n on host hb (its ARP answer and l2_forward flow).
func remoteFlowsOf(r *modelRig, n cluster.Network, eps []cluster.RemoteEndpoint) int {
	count := 0
	for _, e := range eps {
		if e.Network != n.Name {
			continue
		}
		want := pipeline.RemoteEndpointFlows(pipeline.Network{Name: n.Name, VNI: n.VNI, Subnet: n.Subnet},
			pipeline.RemoteHost{Name: e.Host, TunnelIP: netip.MustParseAddr("192.0.2.2")}, pipeline.RemoteEndpoint{Network: e.Network, IP: e.IP, MAC: e.MAC, Host: e.Host})
		for _, f := range want {
			if _, ok := r.sw.Flows[f.Key()]; ok {
				count++
			}
		}
	}
	return count
}

// With scoped remote flows a host programs a network's remote endpoints
// only while it has a local endpoint there (a gateway counts only in a
// routed network); the hosts' own flows (tunnel, ranges) stay.
func TestModelScopedRemoteFlows(t *testing.T) {
	r := newRig(t)
	r.m.scoped = true
	hb := host("hb", "192.0.2.2", map[string]string{"blue": "10.100.2.0/24"})
	v := view(100, host("ha", "192.0.2.1", nil), hb)
	for i := range 10 {
		v.Endpoints = append(v.Endpoints, remote("blue", fmt.Sprintf("10.100.2.%d", i+1), fmt.Sprintf("02:00:00:00:02:%02x", i), "hb"),
			remote("red", fmt.Sprintf("10.200.2.%d", i+1), fmt.Sprintf("02:00:00:00:03:%02x", i), "hb"))
	}
	v.Normalize()
	v.Revision = 1
	blue, _ := v.Network("blue")
	red, _ := v.Network("red")
	r.m.setTunnelPort(100, nil)
	r.m.setView(v, nil)
	r.flush(t)
	hostFlows := pipeline.RemoteHostFlows(pipeline.RemoteHost{Name: "hb", TunnelIP: hb.TunnelIP, Ranges: hb.Ranges},
		r.m.netList)
	check := func(name string, wantBlue, wantRed int) {
		t.Helper()
		r.flush(t)
		r.switchMatchesBuild(t)
		if b, rd := remoteFlowsOf(r, blue, v.Endpoints), remoteFlowsOf(r, red, v.Endpoints); b != wantBlue || rd != wantRed {
			t.Errorf("%s: remote endpoint flows blue %d, red %d; want %d, %d", name, b, rd, wantBlue, wantRed)
		}
		for _, f := range hostFlows {
			if _, ok := r.sw.Flows[f.Key()]; !ok {
				t.Errorf("%s: host hb's flow missing: %s", name, f)
			}
		}
	}
	check("no local endpoint", 0, 0)
	c1 := ep("c1", 5, "blue", "10.100.1.5")
	r.m.setEndpoint(c1)
	check("first endpoint in blue", 20, 0)
	c2 := ep("c2", 6, "blue", "10.100.1.6")
	r.m.setEndpoint(c2)
	r.m.removeEndpoint(c1)
	check("second in, first out", 20, 0)
	gw := ep("gw-red", 7, "red", "10.200.1.1")
	gw.Gateway = true
	r.m.setEndpoint(gw)
	check("a gateway of a NAT network", 20, 0)
	r.m.removeEndpoint(c2)
	check("last endpoint of blue gone", 0, 0)

	// A routed network (nat: false): the outside may send its replies to
	// any host's gateway, so the gateway needs the remote endpoints.
	nv := v
	nv.Networks = []cluster.Network{blue, {Name: "red", VNI: red.VNI, Subnet: red.Subnet, NoNAT: true}}
	nv.Revision = 2
	r.m.setView(nv, []endpoint.Endpoint{gw})
	v = nv
	check("a gateway of a routed network", 0, 20)

	// An endpoint moving to another network moves the need with it.
	c3 := ep("c3", 8, "blue", "10.100.1.8")
	r.m.setEndpoint(c3)
	check("c3 in blue", 20, 20)
	c3.Network, c3.IP = "red", netip.MustParseAddr("10.200.1.8")
	r.m.setEndpoint(c3)
	check("c3 moved to red", 0, 20)
	if len(r.rejects) != 0 {
		t.Errorf("rejects: %v", r.rejects)
	}
}
