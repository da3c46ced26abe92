package openflow

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// SentMessage identifies a message the controller sent, with the fields
// that name it in an error: its xid and type, and for a flow_mod its command,
// table, priority and cookie. Messages added to a bundle carry the bundle ID.
type SentMessage struct {
	Cookie       uint64 // flow_mod cookie
	Xid          uint32
	Experimenter uint32 // OFPT_EXPERIMENTER: experimenter ID
	ExpType      uint32 // OFPT_EXPERIMENTER: experimenter message type
	BundleID     uint32 // bundle of a bundle control or bundled message

	Priority      uint16 // flow_mod priority
	MultipartType uint16 // OFPT_MULTIPART_REQUEST: OFPMP_*
	BundleCtrl    uint16 // ONF bundle control type (open, commit, ...)
	Type          uint8  // ofp_type, e.g. 14 = OFPT_FLOW_MOD
	Command       uint8  // flow_mod command
	TableID       uint8  // flow_mod table
	InBundle      bool   // the message was added to a bundle
}

// String renders the message for errors and logs, e.g.
// "OFPT_FLOW_MOD(add table=3 priority=100 cookie=0x1) xid=42 in bundle 7".
func (m SentMessage) String() string {
	var b strings.Builder
	b.WriteString(MsgTypeName(m.Type))
	switch {
	case m.Type == typeFlowMod:
		fmt.Fprintf(&b, "(%s table=%d priority=%d cookie=%#x)", flowModCommandName(m.Command),
			m.TableID, m.Priority, m.Cookie)
	case m.Type == typeMultipartRequest:
		fmt.Fprintf(&b, "(%s)", multipartTypeName(m.MultipartType))
	case m.Type == typeExperimenter && m.Experimenter == onfExperimenter && m.ExpType == expBundleCtrl:
		fmt.Fprintf(&b, "(bundle %s id=%d)", bundleCtrlTypeName(m.BundleCtrl), m.BundleID)
	case m.Type == typeExperimenter:
		fmt.Fprintf(&b, "(experimenter=%#x type=%d)", m.Experimenter, m.ExpType)
	}
	fmt.Fprintf(&b, " xid=%d", m.Xid)
	if m.InBundle {
		fmt.Fprintf(&b, " in bundle %d", m.BundleID)
	}
	return b.String()
}

// describe extracts a SentMessage from the (possibly truncated) wire bytes
// of a message. It never panics: fields it cannot reach stay zero. A bundle
// add message is described by the message it carries.
func describe(b []byte) SentMessage {
	var m SentMessage
	if len(b) < headerLen {
		return m
	}
	m.Type = b[1]
	m.Xid = binary.BigEndian.Uint32(b[4:8])
	switch m.Type {
	case typeFlowMod:
		if len(b) >= 32 {
			m.Cookie = binary.BigEndian.Uint64(b[8:16])
			m.TableID = b[24]
			m.Command = b[25]
			m.Priority = binary.BigEndian.Uint16(b[30:32])
		}
	case typeMultipartRequest:
		if len(b) >= 10 {
			m.MultipartType = binary.BigEndian.Uint16(b[8:10])
		}
	case typeExperimenter:
		describeExperimenter(b, &m)
	}
	return m
}

func describeExperimenter(b []byte, m *SentMessage) {
	if len(b) < 16 {
		return
	}
	m.Experimenter = binary.BigEndian.Uint32(b[8:12])
	m.ExpType = binary.BigEndian.Uint32(b[12:16])
	if m.Experimenter != onfExperimenter || len(b) < 24 {
		return
	}
	switch m.ExpType {
	case expBundleCtrl:
		m.BundleID = binary.BigEndian.Uint32(b[16:20])
		m.BundleCtrl = binary.BigEndian.Uint16(b[20:22])
	case expBundleAdd:
		id := binary.BigEndian.Uint32(b[16:20])
		if len(b) >= 24+headerLen {
			*m = describe(b[24:])
		}
		m.InBundle, m.BundleID = true, id
	}
}

// sentRing remembers the last len(entries) messages by xid so that an error
// from the switch can name what failed. Xids grow by one per message, so a
// slot is xid modulo the size; a slot whose xid differs was overwritten.
// Not safe for concurrent use: the connection guards it.
type sentRing struct {
	entries []SentMessage
}

func newSentRing(n int) sentRing { return sentRing{entries: make([]SentMessage, n)} }

func (r *sentRing) put(m SentMessage) {
	if len(r.entries) == 0 || m.Xid == 0 {
		return
	}
	r.entries[int(m.Xid%uint32(len(r.entries)))] = m
}

func (r *sentRing) get(xid uint32) (SentMessage, bool) {
	if len(r.entries) == 0 || xid == 0 {
		return SentMessage{}, false
	}
	m := r.entries[int(xid%uint32(len(r.entries)))]
	return m, m.Xid == xid
}
