package agent

import (
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/gateway"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
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

// TestContainerMTU: the configured MTU, else the underlay's minus 42, else
// (no tunnel address, an unreadable underlay) the fallback; without
// gateways the fallback.
func TestContainerMTU(t *testing.T) {
	underlay := func(mtu int, err error) func(netip.Addr) (int, string, error) {
		return func(netip.Addr) (int, string, error) { return mtu, "br-phy", err }
	}
	for _, tc := range []struct {
		name     string
		tunnelIP string
		cfg      *GatewayConfig
		want     int
	}{
		{"no gateways", "192.0.2.1", nil, 1450},
		{"configured", "192.0.2.1", &GatewayConfig{MTU: 1400, UnderlayMTU: underlay(9000, nil)}, 1400},
		{"automatic", "192.0.2.1", &GatewayConfig{UnderlayMTU: underlay(1500, nil)}, 1458},
		{"jumbo underlay", "192.0.2.1", &GatewayConfig{UnderlayMTU: underlay(9000, nil)}, 8958},
		{"unreadable underlay", "192.0.2.1", &GatewayConfig{UnderlayMTU: underlay(0, errors.New("no interface holds 192.0.2.1"))}, 1450},
		{"no tunnel address", "", &GatewayConfig{UnderlayMTU: underlay(9000, nil)}, 1450},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &Agent{log: slog.New(slog.DiscardHandler)}
			if tc.tunnelIP != "" {
				a.cfg.TunnelIP = netip.MustParseAddr(tc.tunnelIP)
			}
			if tc.cfg != nil {
				tc.cfg.Links = noLinks{}
				if err := a.newGateways(*tc.cfg); err != nil {
					t.Fatal(err)
				}
			}
			if got := a.containerMTU(); got != tc.want {
				t.Errorf("containerMTU() = %d, want %d", got, tc.want)
			}
		})
	}
}

type noLinks struct{}

func (noLinks) Ensure(gateway.Gateway, int) ([]string, error) { return nil, nil }
func (noLinks) Prune([]gateway.Gateway) ([]string, error)     { return nil, nil }

// The gateway keeper sees the gateway ports alone: those named as gateways
// are and those carrying the gateway role (a role set by hand on another
// port is the keeper's to remove).
func TestIsGatewayPort(t *testing.T) {
	for _, tc := range []struct {
		iface ovsdb.Interface
		want  bool
	}{
		{ovsdb.Interface{Name: gateway.PortName("blue")}, true},
		{ovsdb.Interface{Name: gateway.PortName("a-very-long-network-name")}, true},
		{ovsdb.Interface{Name: "vc1", ExternalIDs: map[string]string{endpoint.KeyRole: endpoint.RoleGateway}}, true},
		{ovsdb.Interface{Name: "vc1", ExternalIDs: map[string]string{endpoint.KeyNetwork: "blue"}}, false},
		{ovsdb.Interface{Name: "gre0"}, false},
	} {
		if got := isGatewayPort(&tc.iface); got != tc.want {
			t.Errorf("%s %v: %v, want %v", tc.iface.Name, tc.iface.ExternalIDs, got, tc.want)
		}
	}
}
