package arp

import (
	"net"
	"net/netip"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
)

// The first two bytes of every derived MAC.
const (
	derived0 = 0x0a
	derived1 = 0x58
)

// DerivedMAC is the MAC derived from an IPv4 address: 0a:58:<4 address bytes>.
// It returns nil for a non-IPv4 address.
func DerivedMAC(ip netip.Addr) net.HardwareAddr {
	if !ip.Is4() {
		return nil
	}
	a := ip.As4()
	return net.HardwareAddr{derived0, derived1, a[0], a[1], a[2], a[3]}
}

// IsDerived reports whether mac is the derived MAC of ip.
func IsDerived(mac net.HardwareAddr, ip netip.Addr) bool {
	d := DerivedMAC(ip)
	return d != nil && d.String() == mac.String()
}

// DerivedRange is the MAC value and mask that match the derived MACs of every
// address in p (the prefix's mask applied to the last four bytes). It
// returns nils for a non-IPv4 prefix.
func DerivedRange(p netip.Prefix) (mac, mask net.HardwareAddr) {
	if !p.IsValid() || !p.Addr().Is4() {
		return nil, nil
	}
	mac = DerivedMAC(p.Masked().Addr())
	mask = net.HardwareAddr{0xff, 0xff, 0, 0, 0, 0}
	for i := 0; i < p.Bits(); i++ {
		mask[2+i/8] |= 0x80 >> (i % 8)
	}
	return mac, mask
}

// Priorities in the responder table: exact addresses win over ranges, longer
// ranges over shorter ones; unanswered requests and all other ARP packets
// (replies, gratuitous announcements) hit the miss flow and are dropped.
const (
	PriorityAddress   = 200
	PriorityRangeBase = 100 // plus the range's prefix length
	PriorityMiss      = 0
)

// Responder places the responder's flows: its table and the register field
// that holds the packet's network (VNI), which every flow matches so that
// networks never answer for each other.
type Responder struct {
	Table   uint8
	Network flow.RegField
}

// request matches ARP requests for target in network vni.
func (r Responder) request(vni uint32, target netip.Prefix) flow.Match {
	return flow.NewMatch(flow.FieldEthType.Is(uint64(flow.EthTypeARP)), r.Network.Is(vni),
		flow.FieldArpTpa.Prefix(target), flow.FieldArpOp.Is(uint64(flow.ArpRequest)))
}

// Address answers requests for ip in network vni with mac.
func (r Responder) Address(vni uint32, ip netip.Addr, mac net.HardwareAddr, cookie uint64) flow.Flow {
	return flow.Flow{
		Table: r.Table, Priority: PriorityAddress, Cookie: cookie,
		Match: r.request(vni, flow.Host(ip)),
		Actions: []flow.Action{
			flow.Move{Src: flow.Whole(flow.FieldEthSrc), Dst: flow.Whole(flow.FieldEthDst)},
			flow.FieldEthSrc.SetMAC(mac),
			flow.FieldArpOp.Set(uint64(flow.ArpReply)),
			flow.Move{Src: flow.Whole(flow.FieldArpSha), Dst: flow.Whole(flow.FieldArpTha)},
			flow.FieldArpSha.SetMAC(mac),
			flow.Move{Src: flow.Whole(flow.FieldArpSpa), Dst: flow.Whole(flow.FieldArpTpa)},
			flow.FieldArpSpa.SetAddr(ip),
			flow.Output{Port: flow.PortInPort},
		},
	}
}

// Range answers requests for any address of p in network vni with the
// address's derived MAC, built from the requested address itself: eth_src
// becomes 0a:58:00:00:00:00 with arp_tpa copied into its low 32 bits, and
// those bits then become the reply's sender address.
func (r Responder) Range(vni uint32, p netip.Prefix, cookie uint64) flow.Flow {
	low32 := flow.Bits(flow.FieldEthSrc, 0, 32)
	return flow.Flow{
		Table: r.Table, Priority: uint16(PriorityRangeBase + p.Bits()), Cookie: cookie,
		Match: r.request(vni, p.Masked()),
		Actions: []flow.Action{
			flow.Move{Src: flow.Whole(flow.FieldEthSrc), Dst: flow.Whole(flow.FieldEthDst)},
			flow.FieldEthSrc.SetMAC(DerivedMAC(netip.IPv4Unspecified())),
			flow.Move{Src: flow.Whole(flow.FieldArpTpa), Dst: low32},
			flow.FieldArpOp.Set(uint64(flow.ArpReply)),
			flow.Move{Src: flow.Whole(flow.FieldArpSha), Dst: flow.Whole(flow.FieldArpTha)},
			flow.Move{Src: flow.Whole(flow.FieldEthSrc), Dst: flow.Whole(flow.FieldArpSha)},
			flow.Move{Src: flow.Whole(flow.FieldArpSpa), Dst: flow.Whole(flow.FieldArpTpa)},
			flow.Move{Src: low32, Dst: flow.Whole(flow.FieldArpSpa)},
			flow.Output{Port: flow.PortInPort},
		},
	}
}
