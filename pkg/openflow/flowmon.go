package openflow

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/contiv/libOpenflow/openflow13"
)

// Flow monitor wire format on an OpenFlow 1.3 connection to Open vSwitch.
//
// Open vSwitch (3.0 and later) speaks the ONF extension there, not the
// Nicira NXST_FLOW_MONITOR of OpenFlow 1.0 (which it refuses on 1.3 with
// OFPBRC_BAD_SUBTYPE; checked with ovs-ofctl ofp-print and ovs-vswitchd 3.1):
//
//   - request: OFPT_MULTIPART_REQUEST of type OFPMP_EXPERIMENTER,
//     experimenter ONF (0x4f4e4600), exp_type 1870, body
//     onf_flow_monitor_request: id u32, flags u16, match_len u16,
//     out_port u32, table_id u8, zeros[3], then an OpenFlow 1.3 ofp_match
//     (OXM, padded to 8 bytes; match_len is its unpadded length);
//   - updates: OFPT_MULTIPART_REPLY of the same type, with the request's xid
//     for the initial flows and xid 0 for asynchronous updates (which may
//     carry OFPMPF_REPLY_MORE). Each update is a Nicira nx_flow_update_full
//     whose match is an ofp_match (OXM) instead of an nx_match, followed by
//     OpenFlow 1.3 instructions when the ACTIONS flag was asked for, or an
//     nx_flow_update_abbrev (the xid of a flow_mod sent on this connection,
//     when the OWN flag is not set);
//   - OFPT_EXPERIMENTER, experimenter ONF: exp_type 1870 cancels a monitor
//     (body: id u32), 1871 says the switch paused the updates (its send
//     queue for this connection grew past 128 kB), 1872 that it resumed.
//     Both pause messages have no body.
const (
	mpExperimenter         = 0xffff
	onfFlowMonitor         = 1870 // multipart exp_type, and the cancel message
	onfFlowMonitorPaused   = 1871
	onfFlowMonitorResumed  = 1872
	flowMonitorRequestLen  = 16
	flowUpdateFullLen      = 24
	flowUpdateAbbrevLen    = 8
	experimenterMPHeadLen  = 8 // experimenter u32, exp_type u32 after the multipart header
	ofpMatchHeaderLen      = 4
	defaultMonitorQueueLen = 1 << 14
)

// Flow monitor flags (ONFFMF_*, the same bits as Nicira's NXFMF_*).
const (
	MonitorInitial  uint16 = 1 << 0 // report the flows that exist when the monitor starts
	MonitorAdd      uint16 = 1 << 1 // report added flows
	MonitorDelete   uint16 = 1 << 2 // report deleted flows
	MonitorModify   uint16 = 1 << 3 // report modified flows
	MonitorActions  uint16 = 1 << 4 // include the instructions in full updates
	MonitorOwn      uint16 = 1 << 5 // report this connection's own changes in full (else abbreviated)
	monitorFlagsAll        = MonitorInitial | MonitorAdd | MonitorDelete | MonitorModify | MonitorActions | MonitorOwn
)

// FlowUpdateEvent is the kind of a flow update (NXFME_*).
type FlowUpdateEvent uint16

// Flow update events.
const (
	FlowAdded    FlowUpdateEvent = 0 // a flow was added (or replaced by an add); also initial flows
	FlowDeleted  FlowUpdateEvent = 1 // a flow was deleted (Reason says why)
	FlowModified FlowUpdateEvent = 2 // a flow's instructions or cookie changed
	FlowAbbrev   FlowUpdateEvent = 3 // a change made by this connection's flow_mod with Xid
)

var flowUpdateEventNames = [...]string{"added", "deleted", "modified", "abbrev"}

func (e FlowUpdateEvent) String() string {
	if int(e) < len(flowUpdateEventNames) {
		return flowUpdateEventNames[e]
	}
	return fmt.Sprintf("event_%d", uint16(e))
}

// FlowUpdate is one flow change reported by a flow monitor. For FlowAbbrev
// only Xid is set.
type FlowUpdate struct {
	Event       FlowUpdateEvent
	Reason      uint16 // FlowDeleted: OFPRR_* (2 = OFPRR_DELETE by a flow_mod)
	TableID     uint8
	Priority    uint16
	IdleTimeout uint16
	HardTimeout uint16
	Cookie      uint64
	// MatchBytes is the ofp_match as sent by the switch, padding included
	// (the layout of FlowStats.MatchBytes).
	MatchBytes []byte
	// InstructionBytes are the flow's instructions, only with
	// MonitorActions and never for deletions.
	InstructionBytes []byte
	Xid              uint32 // FlowAbbrev: the xid of our flow_mod
}

// FlowMonitorRequest says which flow changes a monitor reports.
type FlowMonitorRequest struct {
	// Flags: Monitor* bits; 0 means MonitorAdd|MonitorDelete|MonitorModify.
	Flags uint16
	// TableID: one table, or AllTables.
	TableID uint8
	// OutPort, if not 0, limits the updates to flows that output to it.
	OutPort uint32
	// Match, if set, limits the updates to flows it loosely matches: OXM
	// TLVs without the ofp_match header (nil: every flow).
	Match []byte
	// QueueLen bounds the updates queued for a slow reader of C; beyond it
	// they are dropped and a FlowMonitorLost event says so. Default 16384.
	QueueLen int
}

func (r FlowMonitorRequest) withDefaults() (FlowMonitorRequest, error) {
	if r.Flags == 0 {
		r.Flags = MonitorAdd | MonitorDelete | MonitorModify
	}
	if r.Flags&^monitorFlagsAll != 0 || r.Flags&(MonitorAdd|MonitorDelete|MonitorModify) == 0 {
		return r, fmt.Errorf("openflow: flow monitor flags %#x: want some of add, delete, modify and no unknown bits", r.Flags)
	}
	if r.OutPort == 0 {
		r.OutPort = openflow13.P_ANY
	}
	if len(r.Match) > 0xff00 {
		return r, fmt.Errorf("openflow: flow monitor match of %d bytes is too long", len(r.Match))
	}
	if r.QueueLen <= 0 {
		r.QueueLen = defaultMonitorQueueLen
	}
	return r, nil
}

// flowMonitorBody is the multipart request body (experimenter header
// included) of monitor id.
func flowMonitorBody(id uint32, r FlowMonitorRequest) []byte {
	mlen := ofpMatchHeaderLen + len(r.Match)
	b := make([]byte, experimenterMPHeadLen+flowMonitorRequestLen+pad8(mlen))
	be := binary.BigEndian
	be.PutUint32(b[0:4], onfExperimenter)
	be.PutUint32(b[4:8], onfFlowMonitor)
	req := b[experimenterMPHeadLen:]
	be.PutUint32(req[0:4], id)
	be.PutUint16(req[4:6], r.Flags)
	be.PutUint16(req[6:8], uint16(mlen))
	be.PutUint32(req[8:12], r.OutPort)
	req[12] = r.TableID
	m := req[flowMonitorRequestLen:]
	be.PutUint16(m[0:2], openflow13.MatchType_OXM)
	be.PutUint16(m[2:4], uint16(mlen))
	copy(m[ofpMatchHeaderLen:], r.Match)
	return b
}

// flowMonitorCancelBytes is the ONF flow monitor cancel message for id.
func flowMonitorCancelBytes(id uint32) []byte {
	body := make([]byte, 12)
	binary.BigEndian.PutUint32(body[0:4], onfExperimenter)
	binary.BigEndian.PutUint32(body[4:8], onfFlowMonitor)
	binary.BigEndian.PutUint32(body[8:12], id)
	return newMessage(typeExperimenter, body)
}

func pad8(n int) int { return (n + 7) / 8 * 8 }

// flowMonitorPart returns the updates of a multipart body (experimenter
// header included) and whether the body is a flow monitor reply at all.
func flowMonitorPart(body []byte) ([]FlowUpdate, bool, error) {
	if len(body) < experimenterMPHeadLen ||
		binary.BigEndian.Uint32(body[0:4]) != onfExperimenter || binary.BigEndian.Uint32(body[4:8]) != onfFlowMonitor {
		return nil, false, nil
	}
	ups, err := parseFlowUpdates(body[experimenterMPHeadLen:])
	return ups, true, err
}

// parseFlowUpdates decodes the updates of one flow monitor reply body.
// Every length is checked: a bad one fails the whole body.
func parseFlowUpdates(b []byte) ([]FlowUpdate, error) {
	var out []FlowUpdate
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, malformed("flow update: %d trailing bytes", len(b))
		}
		n := int(binary.BigEndian.Uint16(b[0:2]))
		if n < flowUpdateAbbrevLen || n%8 != 0 || n > len(b) {
			return nil, malformed("flow update: length %d of %d bytes left", n, len(b))
		}
		u, err := parseFlowUpdate(b[:n])
		if err != nil {
			return nil, err
		}
		out = append(out, u)
		b = b[n:]
	}
	return out, nil
}

// parseFlowUpdate decodes one well-framed update (len(e) is its length).
func parseFlowUpdate(e []byte) (FlowUpdate, error) {
	be := binary.BigEndian
	ev := FlowUpdateEvent(be.Uint16(e[2:4]))
	switch ev {
	case FlowAbbrev:
		if len(e) != flowUpdateAbbrevLen {
			return FlowUpdate{}, malformed("abbreviated flow update of %d bytes, want %d", len(e), flowUpdateAbbrevLen)
		}
		return FlowUpdate{Event: ev, Xid: be.Uint32(e[4:8])}, nil
	case FlowAdded, FlowDeleted, FlowModified:
	default:
		return FlowUpdate{}, malformed("flow update with unknown event %d", uint16(ev))
	}
	if len(e) < flowUpdateFullLen+pad8(ofpMatchHeaderLen) {
		return FlowUpdate{}, malformed("flow update (%s) of %d bytes", ev, len(e))
	}
	u := FlowUpdate{
		Event: ev, Reason: be.Uint16(e[4:6]), Priority: be.Uint16(e[6:8]),
		IdleTimeout: be.Uint16(e[8:10]), HardTimeout: be.Uint16(e[10:12]),
		TableID: e[14], Cookie: be.Uint64(e[16:24]),
	}
	mlen := int(be.Uint16(e[12:14]))
	rest := e[flowUpdateFullLen:]
	if mlen < ofpMatchHeaderLen || pad8(mlen) > len(rest) {
		return FlowUpdate{}, malformed("flow update (%s): match length %d of %d bytes left", ev, mlen, len(rest))
	}
	if mt, ml := be.Uint16(rest[0:2]), int(be.Uint16(rest[2:4])); mt != openflow13.MatchType_OXM || ml != mlen {
		return FlowUpdate{}, malformed("flow update (%s): ofp_match type %d length %d, want OXM of %d", ev, mt, ml, mlen)
	}
	u.MatchBytes = bytes.Clone(rest[:pad8(mlen)])
	if instr := rest[pad8(mlen):]; len(instr) > 0 {
		u.InstructionBytes = bytes.Clone(instr)
	}
	return u, nil
}

// pauseSignal says whether b is the ONF flow monitor paused or resumed
// message (ok false for any other message).
func pauseSignal(b []byte) (kind FlowMonitorEventKind, ok bool, err error) {
	if len(b) < 16 || b[1] != typeExperimenter || binary.BigEndian.Uint32(b[8:12]) != onfExperimenter {
		return 0, false, nil
	}
	switch binary.BigEndian.Uint32(b[12:16]) {
	case onfFlowMonitorPaused:
		kind = FlowMonitorPaused
	case onfFlowMonitorResumed:
		kind = FlowMonitorResumed
	default:
		return 0, false, nil
	}
	if len(b) != 16 {
		return kind, true, malformed("flow monitor %s message of %d bytes, want 16", kind, len(b))
	}
	return kind, true, nil
}
