package pipeline

import (
	"hash/fnv"

	"github.com/ofctl-agent/ofctl-agent/pkg/arp"
	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	"github.com/ofctl-agent/ofctl-agent/pkg/tunnel"
)

// Table names a pipeline table. Its OpenFlow table ID is its position in
// the declaration below (see ID), which is also the order packets visit the
// tables: goto_table only goes forward.
type Table string

// The tables' names. Their order, purpose and miss policy are declared once,
// in declared.
const (
	Classifier    Table = "classifier"
	SpoofGuard    Table = "spoof_guard"
	ARPResponder  Table = "arp_responder"
	TunnelIngress Table = "tunnel_ingress"
	TunnelNetwork Table = "tunnel_network"
	L2Forward     Table = "l2_forward"
	TunnelEgress  Table = "tunnel_egress"
)

// declaration is one table: its name, what it does, and where packets that
// none of its flows match go (its miss flow, priority 0, owned by
// FixedFlows).
type declaration struct {
	table Table
	doc   string
	// missTo is where unmatched packets continue; "" drops them, and the
	// miss flow's packet counter counts what the table dropped.
	missTo Table
}

// declared is the pipeline, one table per line, top to bottom in the order
// packets visit them. A table's ID is its index here: inserting a table
// renumbers the later ones, and everything else (goto_table targets, miss
// flows, tests, golden files, metrics and debug names) follows from this
// list. See docs/pipeline.md, "Adding a table".
var declared = [...]declaration{
	{Classifier, "tunnel port -> tunnel_ingress, anything else -> spoof_guard", SpoofGuard},
	{SpoofGuard, "per local port: IPv4 and ARP with the endpoint's own MAC and IP set reg0 and continue; all else dropped", ""},
	{ARPResponder, "requests for known addresses become replies sent back in place; all other ARP dropped", ""},
	{TunnelIngress, "tunneled packets from known remote hosts (tun_src) continue", ""},
	{TunnelNetwork, "tunneled IPv4 of a known network (tun_id) sets reg0 and the from-tunnel bit", ""},
	{L2Forward, "by network and destination MAC: output to a local port, or reg2=host and go to tunnel_egress", ""},
	{TunnelEgress, "tun_dst from reg2, tun_id from reg0, output to the tunnel port", ""},
}

// TableInfo names and describes a table.
type TableInfo struct {
	ID   uint8
	Name string
	Doc  string
	// MissTo is the table that packets no flow matches continue in; ""
	// when the table drops them.
	MissTo Table
}

// Tables lists the pipeline's tables in order (index = ID).
func Tables() []TableInfo {
	out := make([]TableInfo, len(declared))
	for i, d := range declared {
		out[i] = TableInfo{ID: uint8(i), Name: string(d.table), Doc: d.doc, MissTo: d.missTo}
	}
	return out
}

// ID is the table's OpenFlow table ID, its position in the declaration. A
// Table that is not declared is a programming error (every builder runs in
// the package's tests): it panics.
func (t Table) ID() uint8 {
	for i := range declared {
		if declared[i].table == t {
			return uint8(i)
		}
	}
	panic("pipeline: table " + string(t) + " is not declared")
}

// TableByID is the table with OpenFlow table ID id, if the pipeline has one.
func TableByID(id uint8) (Table, bool) {
	if int(id) < len(declared) {
		return declared[id].table, true
	}
	return "", false
}

// String is the table's name.
func (t Table) String() string { return string(t) }

// gotoTable continues in table t.
func gotoTable(t Table) flow.Action { return flow.GotoTable{Table: t.ID()} }

// Register fields and their marks: the layout is fixed; each field is named
// once here with its bits, and each constant value a flow writes into or
// matches in a field is a mark named next to it (data such as a VNI or an
// address is loaded into its field by value). Never written at run time.
var (
	// regNetwork (reg0, 32 bits) is the VNI of the packet's network: set
	// by spoof_guard for local packets and by tunnel_network for tunneled
	// ones, matched by every arp_responder and l2_forward flow (isolation),
	// and copied into tun_id on egress. Data: no marks.
	regNetwork = flow.RegField{Reg: 0, Ofs: 0, Bits: 32}
	// regFromTunnel (reg1 bit 0) tells where the packet came from:
	// tunnel_network sets markFromTunnel; l2_forward sends only packets
	// with markFromLocal into the tunnel, never the tunnel's own.
	regFromTunnel  = flow.RegField{Reg: 1, Ofs: 0, Bits: 1}
	markFromTunnel = regFromTunnel.Mark(1)
	markFromLocal  = regFromTunnel.Mark(0)
	// regTunnelDst (reg2, 32 bits) is the remote host's underlay IPv4
	// address, set by l2_forward, copied into tun_dst by tunnel_egress.
	// Data: no marks.
	regTunnelDst = flow.RegField{Reg: 2, Ofs: 0, Bits: 32}
)

// Priorities of the tables the pipeline fills itself.
const (
	priorityTunnelPort = 200 // classifier
	priorityAllow      = 200 // spoof_guard: the endpoint's own IPv4 and ARP
	priorityPortDrop   = 100 // spoof_guard: everything else from the port
	priorityEndpoint   = 200 // l2_forward: exact destination MAC of a local endpoint
	priorityRemote     = 195 // l2_forward: a remote endpoint's MAC, below a local one's (docs/pipeline.md)
	priorityRewrite    = 190 // l2_forward: derived MAC of a local endpoint with another MAC
	priorityRangeBase  = 100 // l2_forward: a remote range, plus its prefix length
	priorityMiss       = 0
)

func responder() arp.Responder {
	return arp.Responder{Table: ARPResponder.ID(), Network: regNetwork}
}

func tunnels() tunnel.Layout {
	return tunnel.Layout{
		IngressTable: TunnelIngress.ID(), NetworkTable: TunnelNetwork.ID(),
		NextTable: L2Forward.ID(), EgressTable: TunnelEgress.ID(),
		VNI: regNetwork, FromTunnel: markFromTunnel, Destination: regTunnelDst,
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
