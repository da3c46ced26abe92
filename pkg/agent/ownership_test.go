package agent

import (
	"net/netip"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
)

// arpFlow returns the arp_responder flow among flows.
func arpFlow(t *testing.T, flows []flow.Flow) flow.Flow {
	t.Helper()
	for _, f := range flows {
		if f.Table == pipeline.ARPResponder.ID() {
			return f
		}
	}
	t.Fatal("no arp_responder flow")
	return flow.Flow{}
}

// holdsFlow asserts the switch holds want (what) as it is.
func (r *modelRig) holdsFlow(t *testing.T, want flow.Flow, what string) {
	t.Helper()
	st, ok := r.sw.Get(want.Key())
	if !ok {
		t.Fatalf("%s: the switch has no flow for the key, want %s", what, want)
	}
	if st.Content() != want.Content() {
		got, _ := st.Flow()
		t.Fatalf("%s: the switch holds %s, want %s", what, got, want)
	}
}

// TestLocalEndpointKeepsItsAddress (etcd mode): a remote claim for a local
// endpoint's IP that won in etcd (an older claim) must not take the
// endpoint's ARP answer, whatever the order in which the model learns of
// the two: at start-up (the view and the endpoints loaded together), the
// endpoint attached after the claim, the claim arriving after the
// endpoint. When the claim goes the endpoint keeps its answer; when the
// endpoint goes the claim's answer is installed (issue 13, finding 2).
func TestLocalEndpointKeepsItsAddress(t *testing.T) {
	const ip = "10.100.1.5"
	local := ep("p1", 11, "blue", ip)
	claim := remote("blue", ip, "02:00:00:00:0b:05", "hb")
	blue := pipeline.Network{Name: "blue", VNI: 100, Subnet: netip.MustParsePrefix("10.100.0.0/16")}
	mine := arpFlow(t, pipeline.EndpointFlows(blue, pipeline.Endpoint{Network: "blue", Port: local.Port,
		OFPort: local.OFPort, MAC: local.MAC, IP: local.IP}))
	theirs := arpFlow(t, pipeline.RemoteEndpointFlows(blue, pipeline.RemoteHost{Name: "hb", TunnelIP: netip.MustParseAddr("192.0.2.2")},
		pipeline.RemoteEndpoint{Network: "blue", IP: claim.IP, MAC: claim.MAC, Host: "hb"}))
	withClaim := func(rev int64) cluster.View {
		v := view(100, host("ha", "192.0.2.1", nil), host("hb", "192.0.2.2", nil))
		v.Endpoints = []cluster.RemoteEndpoint{claim}
		v.Revision = rev
		return v
	}
	withoutClaim := func(rev int64) cluster.View {
		v := withClaim(rev)
		v.Endpoints = nil
		return v
	}
	for _, c := range []struct {
		name string
		load func(r *modelRig)
	}{
		{"restart: view and endpoint loaded together", func(r *modelRig) {
			r.m.setView(withClaim(1), []endpoint.Endpoint{local})
		}},
		{"endpoint attached after the claim", func(r *modelRig) {
			r.m.setView(withClaim(1), nil)
			r.flush(t)
			r.m.setEndpoint(local)
		}},
		{"claim arrives after the endpoint", func(r *modelRig) {
			r.m.setView(withoutClaim(1), []endpoint.Endpoint{local})
			r.flush(t)
			r.m.setView(withClaim(2), []endpoint.Endpoint{local})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			r.m.setTunnelPort(100, nil)
			c.load(r)
			r.flush(t)
			r.holdsFlow(t, mine, "the local endpoint")
			r.switchMatchesBuild(t)

			r.m.setView(withoutClaim(3), []endpoint.Endpoint{local}) // the claim goes
			r.flush(t)
			r.holdsFlow(t, mine, "after the remote claim went")
			r.m.setView(withClaim(4), []endpoint.Endpoint{local}) // it comes back
			r.m.removeEndpoint(local)                             // and the endpoint goes
			r.flush(t)
			r.holdsFlow(t, theirs, "after the local endpoint went: the remote claim")
			r.switchMatchesBuild(t)
		})
	}
}
