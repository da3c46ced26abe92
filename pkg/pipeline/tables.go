package pipeline

import (
	"hash/fnv"

	"github.com/ofctl-agent/ofctl-agent/pkg/arp"
	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	"github.com/ofctl-agent/ofctl-agent/pkg/tunnel"
)

// Table is a pipeline stage. Its OpenFlow table ID is its position in this
// list, which is also the order packets visit the tables: goto_table only
// goes forward.
type Table uint8

// The tables, in order. Every table ends with a priority-0 miss flow
// (drop, except where noted), whose packet counter counts what it drops.
const (
	// Classifier splits tunnel traffic from local traffic by in_port.
	Classifier Table = iota
	// SpoofGuard admits a local endpoint's IPv4 and ARP only with its own
	// MAC and IP, and sets the network register.
	SpoofGuard
	// ARPResponder answers ARP requests for known addresses in place.
	ARPResponder
	// TunnelIngress admits tunneled packets from known remote hosts.
	TunnelIngress
	// TunnelNetwork maps the tunnel key to a known network.
	TunnelNetwork
	// L2Forward delivers by destination MAC within the packet's network:
	// to a local port, or to a remote host through the tunnel.
	L2Forward
	// TunnelEgress encapsulates towards the remote host (miss: tunnel output).
	TunnelEgress
	numTables
)

// TableInfo names and describes a table.
type TableInfo struct {
	ID   uint8
	Name string
	Doc  string
}

// Tables lists the pipeline's tables in order.
func Tables() []TableInfo {
	docs := [numTables][2]string{
		Classifier:    {"classifier", "tunnel port -> tunnel_ingress, anything else -> spoof_guard"},
		SpoofGuard:    {"spoof_guard", "per local port: IPv4 and ARP with the endpoint's own MAC and IP set reg0 and continue; all else dropped"},
		ARPResponder:  {"arp_responder", "requests for known addresses become replies sent back in place; all other ARP dropped"},
		TunnelIngress: {"tunnel_ingress", "tunneled packets from known remote hosts (tun_src) continue"},
		TunnelNetwork: {"tunnel_network", "tunneled IPv4 of a known network (tun_id) sets reg0 and the from-tunnel bit"},
		L2Forward:     {"l2_forward", "by network and destination MAC: output to a local port, or reg2=host and go to tunnel_egress"},
		TunnelEgress:  {"tunnel_egress", "tun_dst from reg2, tun_id from reg0, output to the tunnel port"},
	}
	out := make([]TableInfo, numTables)
	for t := range numTables {
		out[t] = TableInfo{ID: uint8(t), Name: docs[t][0], Doc: docs[t][1]}
	}
	return out
}

// String is the table's name.
func (t Table) String() string {
	if t < numTables {
		return Tables()[t].Name
	}
	return "unknown"
}

// Register fields: the layout is fixed; each field is named once here with
// its bits and never written to at run time.
var (
	// regNetwork (reg0, 32 bits) is the VNI of the packet's network: set
	// by spoof_guard for local packets and by tunnel_network for tunneled
	// ones, matched by every arp_responder and l2_forward flow (isolation),
	// and copied into tun_id on egress.
	regNetwork = flow.RegField{Reg: 0, Ofs: 0, Bits: 32}
	// regFromTunnel (reg1 bit 0) marks packets that came from the tunnel:
	// l2_forward never sends them back into it.
	regFromTunnel = flow.RegField{Reg: 1, Ofs: 0, Bits: 1}
	// regTunnelDst (reg2, 32 bits) is the remote host's underlay IPv4
	// address, set by l2_forward, copied into tun_dst by tunnel_egress.
	regTunnelDst = flow.RegField{Reg: 2, Ofs: 0, Bits: 32}
)

// Priorities of the tables the pipeline fills itself.
const (
	priorityTunnelPort = 200 // classifier
	priorityAllow      = 200 // spoof_guard: the endpoint's own IPv4 and ARP
	priorityPortDrop   = 100 // spoof_guard: everything else from the port
	priorityEndpoint   = 200 // l2_forward: exact destination MAC
	priorityRewrite    = 190 // l2_forward: derived MAC of a local endpoint with another MAC
	priorityRangeBase  = 100 // l2_forward: a remote range, plus its prefix length
	priorityMiss       = 0
)

func responder() arp.Responder {
	return arp.Responder{Table: uint8(ARPResponder), Network: regNetwork}
}

func tunnels() tunnel.Layout {
	return tunnel.Layout{
		IngressTable: uint8(TunnelIngress), NetworkTable: uint8(TunnelNetwork),
		NextTable: uint8(L2Forward), EgressTable: uint8(TunnelEgress),
		VNI: regNetwork, FromTunnel: regFromTunnel, Destination: regTunnelDst,
	}
}

// Cookie layout (64 bits):
//
//	63..48  CookieMagic: the agent's flows, and only those, carry it
//	47..40  Category of the object the flow belongs to
//	39..32  Role of the flow within its object; zero for most flows
//	31..0   object ID: FNV-1a of the object's identity (ObjectID)
//
// All of the agent's flows are selected by CookieMagic/MagicMask; all flows
// of one object by its cookie/ObjectMask (whatever their role); the flows
// of one role in every object of a category by RoleCookie/RoleMask.
const (
	CookieMagic uint64 = 0xfca0 << 48
	MagicMask   uint64 = 0xffff << 48
	ObjectMask  uint64 = MagicMask | 0xff<<40 | 0xffffffff
	RoleMask    uint64 = MagicMask | 0xff<<40 | 0xff<<32
)

// Category is the kind of object a flow belongs to.
type Category uint8

// Categories.
const (
	CategoryFixed          Category = 1 // tables' fixed and miss flows
	CategoryNetwork        Category = 2
	CategoryLocalEndpoint  Category = 3
	CategoryRemoteHost     Category = 4
	CategoryRemoteEndpoint Category = 5
)

// Cookie is the cookie of the flows of object id in category c.
func Cookie(c Category, id uint32) uint64 {
	return CookieMagic | uint64(c)<<40 | uint64(id)
}

// Role marks the flows that a reader selects across objects by cookie, so
// that Open vSwitch returns them alone (a flow-stats request with
// RoleCookie/RoleMask) instead of every flow of their table.
type Role uint8

// Roles.
const (
	RoleNone Role = 0
	// RoleSpoofDrop is a local endpoint's spoof_guard drop flow (in_port,
	// no actions, below the flows admitting its own MAC and IP): its
	// packet counter is the port's spoof-guard drops (the metrics read it).
	RoleSpoofDrop Role = 1
)

// WithRole returns cookie with its role field set to r.
func WithRole(cookie uint64, r Role) uint64 { return cookie&^(0xff<<32) | uint64(r)<<32 }

// RoleCookie is, with RoleMask, the cookie selection of the flows of role r
// in every object of category c.
func RoleCookie(c Category, r Role) uint64 { return WithRole(Cookie(c, 0), r) }

// ParseCookie splits an agent cookie; ok is false for a foreign cookie.
func ParseCookie(cookie uint64) (c Category, id uint32, ok bool) {
	if cookie&MagicMask != CookieMagic {
		return 0, 0, false
	}
	return Category(cookie >> 40), uint32(cookie), true
}

// ObjectID hashes an object's identity (see the Cookie methods of the model
// types). Distinct objects may collide with probability ~n²/2³³; flows are
// diffed by key, so a collision only widens a by-cookie selection.
func ObjectID(identity string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(identity))
	return h.Sum32()
}
