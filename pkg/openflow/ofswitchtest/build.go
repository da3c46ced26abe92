package ofswitchtest

import (
	"encoding/binary"
	"net"
)

// Message builds an OpenFlow 1.3 message with the given type, xid and body.
func Message(typ uint8, xid uint32, body []byte) []byte {
	b := make([]byte, 8+len(body))
	b[0], b[1] = 4, typ
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
	binary.BigEndian.PutUint32(b[4:8], xid)
	copy(b[8:], body)
	return b
}

// Hello builds a HELLO of the given version, with a version-bitmap element
// when bitmap is not empty.
func Hello(version uint8, bitmap []uint32) []byte {
	var body []byte
	if len(bitmap) > 0 {
		n := 4 + 4*len(bitmap)
		el := make([]byte, (n+7)/8*8)
		binary.BigEndian.PutUint16(el[0:2], 1)
		binary.BigEndian.PutUint16(el[2:4], uint16(n))
		for i, w := range bitmap {
			binary.BigEndian.PutUint32(el[4+4*i:], w)
		}
		body = el
	}
	b := Message(TypeHello, 1, body)
	b[0] = version
	return b
}

// Error builds an OFPT_ERROR answering xid, echoing data (the failing request).
func Error(xid uint32, typ, code uint16, data []byte) []byte {
	body := make([]byte, 4, 4+len(data))
	binary.BigEndian.PutUint16(body[0:2], typ)
	binary.BigEndian.PutUint16(body[2:4], code)
	return Message(TypeError, xid, append(body, data...))
}

// ExperimenterError builds an experimenter OFPT_ERROR (e.g. ONF bundle errors).
func ExperimenterError(xid uint32, code uint16, experimenter uint32, data []byte) []byte {
	body := make([]byte, 8, 8+len(data))
	binary.BigEndian.PutUint16(body[0:2], 0xffff)
	binary.BigEndian.PutUint16(body[2:4], code)
	binary.BigEndian.PutUint32(body[4:8], experimenter)
	return Message(TypeError, xid, append(body, data...))
}

// MultipartReply builds one multipart reply; more sets OFPMPF_REPLY_MORE.
func MultipartReply(xid uint32, mpType uint16, more bool, body []byte) []byte {
	h := make([]byte, 8, 8+len(body))
	binary.BigEndian.PutUint16(h[0:2], mpType)
	if more {
		h[3] = 1
	}
	return Message(TypeMultipartReply, xid, append(h, body...))
}

// Port is an ofp_port for PortDesc and PortStatus bodies.
type Port struct {
	No     uint32
	HWAddr net.HardwareAddr
	Name   string
	Config uint32
	State  uint32
	Speed  uint32
}

// Bytes encodes the 64-byte ofp_port.
func (p Port) Bytes() []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[0:4], p.No)
	copy(b[8:14], p.HWAddr)
	copy(b[16:32], p.Name)
	binary.BigEndian.PutUint32(b[32:36], p.Config)
	binary.BigEndian.PutUint32(b[36:40], p.State)
	binary.BigEndian.PutUint32(b[56:60], p.Speed)
	binary.BigEndian.PutUint32(b[60:64], p.Speed)
	return b
}

// PortStatus builds an OFPT_PORT_STATUS (reason 0 add, 1 delete, 2 modify).
func PortStatus(reason uint8, p Port) []byte {
	body := make([]byte, 8, 8+64)
	body[0] = reason
	return Message(TypePortStatus, 0, append(body, p.Bytes()...))
}

// FlowStatsEntry builds one ofp_flow_stats entry with an empty match and
// no instructions.
func FlowStatsEntry(table uint8, priority uint16, cookie uint64, packets uint64) []byte {
	b := make([]byte, 56)
	binary.BigEndian.PutUint16(b[0:2], 56)
	b[2] = table
	binary.BigEndian.PutUint16(b[12:14], priority)
	binary.BigEndian.PutUint64(b[24:32], cookie)
	binary.BigEndian.PutUint64(b[32:40], packets)
	binary.BigEndian.PutUint16(b[48:50], 1) // OFPMT_OXM
	binary.BigEndian.PutUint16(b[50:52], 4) // empty match
	return b
}
