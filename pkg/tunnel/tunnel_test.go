package tunnel

import (
	"net/netip"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
)

var layout = Layout{
	IngressTable: 3, NetworkTable: 4, NextTable: 5, EgressTable: 6,
	VNI:         flow.RegField{Reg: 0, Bits: 32},
	FromTunnel:  flow.RegField{Reg: 1, Bits: 1}.Mark(1),
	Destination: flow.RegField{Reg: 2, Bits: 32},
}

func TestFlows(t *testing.T) {
	tests := []struct {
		name string
		f    flow.Flow
		want string
	}{
		{"host", layout.HostFlow(netip.MustParseAddr("192.0.2.2"), 9),
			"cookie=0x9, table=3, priority=100,tun_src=192.0.2.2 actions=goto_table:4"},
		{"network", layout.NetworkFlow(0xabcdef, 9),
			"cookie=0x9, table=4, priority=100,ip,tun_id=0xabcdef actions=set_field:0xabcdef->reg0,load:0x1->NXM_NX_REG1[0],goto_table:5"},
		{"egress", layout.EgressFlow(100, 9),
			"cookie=0x9, table=6, priority=0 actions=move:NXM_NX_REG2[]->NXM_NX_TUN_IPV4_DST[],move:NXM_NX_REG0[]->NXM_NX_TUN_ID[0..31],output:100"},
		{"to host", flow.Flow{Table: 5, Priority: 1, Actions: layout.ToHost(netip.MustParseAddr("192.0.2.3"))},
			"table=5, priority=1 actions=set_field:0xc0000203->reg2,goto_table:6"},
	}
	for _, tt := range tests {
		if err := tt.f.Validate(); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
		if got := tt.f.String(); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
	}
}
