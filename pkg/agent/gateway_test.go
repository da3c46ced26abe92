package agent

import (
	"strings"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/pkg/reconcile"
)

// TestGatewayRoleHonouredOnItsPortAlone: the gateway role (a spoof guard
// that admits any source IP) is given to the port named gateway.PortName
// of its network; any other port claiming it keeps an endpoint's guard.
func TestGatewayRoleHonouredOnItsPortAlone(t *testing.T) {
	r := newRig(t)
	self := host("ha", "192.0.2.1", map[string]string{"blue": "10.100.1.0/24"})
	gw := ep("ofgw-blue", 5, "blue", "10.100.1.1")
	gw.Gateway = true
	fake := ep("vrogue", 6, "blue", "10.100.1.9")
	fake.Gateway = true // a port's writer claims the role
	wrongNet := ep("ofgw-red", 7, "blue", "10.100.1.8")
	wrongNet.Gateway = true // a gateway's name, another network
	r.m.setTunnelPort(100, nil)
	r.m.setView(view(100, self), nil)
	r.m.setEndpoint(gw)
	r.m.setEndpoint(fake)
	r.m.setEndpoint(wrongNet)
	r.flush(t)
	got := map[string]bool{}
	for _, e := range r.m.state(true).Endpoints {
		got[e.Port] = e.Gateway
	}
	if !got["ofgw-blue"] || got["vrogue"] || got["ofgw-red"] {
		t.Errorf("gateway role: %v; want ofgw-blue alone", got)
	}
	r.switchMatchesBuild(t)
	guards := 0
	for _, st := range r.sw.Flows {
		f, err := st.Flow()
		if err != nil {
			t.Fatal(err)
		}
		if text := f.String(); f.Table == pipeline.SpoofGuard.ID() && strings.Contains(text, "ip,") && !strings.Contains(text, "nw_src=") {
			guards++
			if !strings.Contains(text, "in_port=5,") {
				t.Errorf("a spoof guard without nw_src for another port: %s", text)
			}
		}
	}
	if guards != 1 {
		t.Errorf("%d spoof guards admitting any source IP, want 1 (the gateway's)", guards)
	}
	if name := r.m.names[reconcile.Owner("endpoint/ofgw-blue")]; name != "gateway ofgw-blue (blue 10.100.1.1)" {
		t.Errorf("owner name %q, want the gateway's", name)
	}
}
