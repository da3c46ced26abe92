package tunnel

import (
	"net/netip"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
)

// Priorities of the ingress flows; misses (priority 0) drop.
const (
	PriorityHost    = 100
	PriorityNetwork = 100
)

// Layout places the tunnel flows in the pipeline.
type Layout struct {
	IngressTable uint8 // accepts known remote hosts (tun_src)
	NetworkTable uint8 // maps tun_id to a known network
	NextTable    uint8 // where tunneled packets continue (forwarding)
	EgressTable  uint8 // sends to the tunnel

	VNI         flow.RegField // the packet's network
	FromTunnel  flow.RegMark  // set on packets that came from the tunnel
	Destination flow.RegField // 32 bits: underlay IPv4 address to send to
}

// HostFlow accepts tunneled packets from a remote host's underlay address.
func (l Layout) HostFlow(underlay netip.Addr, cookie uint64) flow.Flow {
	return flow.Flow{
		Table: l.IngressTable, Priority: PriorityHost, Cookie: cookie,
		Match:   flow.NewMatch(flow.FieldTunSrc.Addr(underlay)),
		Actions: []flow.Action{flow.GotoTable{Table: l.NetworkTable}},
	}
}

// NetworkFlow accepts tunneled IPv4 packets of network vni: it sets the network
// register and the from-tunnel bit, and continues to forwarding.
func (l Layout) NetworkFlow(vni uint32, cookie uint64) flow.Flow {
	return flow.Flow{
		Table: l.NetworkTable, Priority: PriorityNetwork, Cookie: cookie,
		Match: flow.NewMatch(flow.FieldEthType.Is(uint64(flow.EthTypeIPv4)), flow.FieldTunID.Is(uint64(vni))),
		Actions: []flow.Action{
			l.VNI.Load(vni),
			l.FromTunnel.Load(),
			flow.GotoTable{Table: l.NextTable},
		},
	}
}

// ToHost are the actions that send a packet to a remote host: remember its
// underlay address, go to egress.
func (l Layout) ToHost(underlay netip.Addr) []flow.Action {
	var dst uint32
	if underlay.Is4() {
		a := underlay.As4()
		dst = uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	}
	return []flow.Action{l.Destination.Load(dst), flow.GotoTable{Table: l.EgressTable}}
}

// EgressFlow is the egress table's only flow: tunnel destination and key from
// the registers, out of the tunnel port.
func (l Layout) EgressFlow(port uint32, cookie uint64) flow.Flow {
	return flow.Flow{
		Table: l.EgressTable, Priority: 0, Cookie: cookie,
		Actions: []flow.Action{
			flow.Move{Src: l.Destination.Subfield(), Dst: flow.Whole(flow.FieldTunDst)},
			flow.Move{Src: l.VNI.Subfield(), Dst: flow.Bits(flow.FieldTunID, 0, l.VNI.Bits)},
			flow.Output{Port: port},
		},
	}
}
