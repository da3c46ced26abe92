package openflow

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/contiv/libOpenflow/openflow13"
	"github.com/contiv/libOpenflow/util"
)

// Every decoder here takes bytes from the switch, validates lengths before
// handing them to libOpenflow, and recovers from its panics: bad input gives
// an error wrapping ErrMalformed, never a crash.

// guard turns a panic in fn into an ErrMalformed error.
func guard(what string, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = malformed("%s: decoder panic: %v", what, r)
		}
	}()
	return fn()
}

// Features is the switch's FEATURES_REPLY.
type Features struct {
	DatapathID   uint64
	NBuffers     uint32
	NTables      uint8
	AuxiliaryID  uint8
	Capabilities uint32
}

func parseFeatures(b []byte) (Features, error) {
	if _, err := parseHeader(b); err != nil {
		return Features{}, err
	}
	if len(b) < 32 {
		return Features{}, malformed("OFPT_FEATURES_REPLY: %d bytes, want 32", len(b))
	}
	sf := openflow13.NewFeaturesReply()
	// Only the fixed part: a 1.3 reply carries no ports, and the
	// libOpenflow decoder would try to read ports from any extra bytes.
	if err := guard("OFPT_FEATURES_REPLY", func() error { return sf.UnmarshalBinary(b[:32]) }); err != nil {
		return Features{}, err
	}
	return Features{
		DatapathID:   binary.BigEndian.Uint64(sf.DPID),
		NBuffers:     sf.Buffers,
		NTables:      sf.NumTables,
		AuxiliaryID:  sf.AuxilaryId,
		Capabilities: sf.Capabilities,
	}, nil
}

// parseError decodes an OFPT_ERROR, standard or experimenter. libOpenflow's
// ErrorMsg decoder indexes without length checks, so this is ours.
func parseError(b []byte) (*OFError, error) {
	h, err := parseHeader(b)
	if err != nil {
		return nil, err
	}
	if len(b) < 12 {
		return nil, malformed("OFPT_ERROR: %d bytes, want at least 12", len(b))
	}
	e := &OFError{
		Xid:  h.Xid,
		Type: binary.BigEndian.Uint16(b[8:10]),
		Code: binary.BigEndian.Uint16(b[10:12]),
	}
	data := b[12:]
	if e.Type == openflow13.ET_EXPERIMENTER {
		if len(b) < 16 {
			return nil, malformed("OFPT_ERROR (experimenter): %d bytes, want at least 16", len(b))
		}
		e.Experimenter = binary.BigEndian.Uint32(b[12:16])
		data = b[16:]
	}
	e.Data = bytes.Clone(data)
	e.Request = describe(e.Data)
	return e, nil
}

// Port is an ofp_port (port description).
type Port struct {
	No         uint32
	HWAddr     net.HardwareAddr
	Name       string
	Config     uint32 // OFPPC_* bits
	State      uint32 // OFPPS_* bits
	Curr       uint32
	Advertised uint32
	Supported  uint32
	Peer       uint32
	CurrSpeed  uint32 // kbps
	MaxSpeed   uint32 // kbps
}

const portLen = 64

// parsePort decodes exactly one 64-byte ofp_port with libOpenflow's PhyPort.
func parsePort(b []byte) (Port, error) {
	if len(b) != portLen {
		return Port{}, malformed("ofp_port: %d bytes, want %d", len(b), portLen)
	}
	p := openflow13.NewPhyPort()
	if err := guard("ofp_port", func() error { return p.UnmarshalBinary(b) }); err != nil {
		return Port{}, err
	}
	return Port{
		No: p.PortNo, HWAddr: net.HardwareAddr(bytes.Clone(p.HWAddr)),
		Name:   string(bytes.TrimRight(p.Name, "\x00")),
		Config: p.Config, State: p.State, Curr: p.Curr, Advertised: p.Advertised,
		Supported: p.Supported, Peer: p.Peer, CurrSpeed: p.CurrSpeed, MaxSpeed: p.MaxSpeed,
	}, nil
}

// PortStatus is an OFPT_PORT_STATUS event.
type PortStatus struct {
	Reason uint8 // openflow13.PR_ADD, PR_DELETE or PR_MODIFY
	Port   Port
}

// ReasonName is "add", "delete" or "modify".
func (p PortStatus) ReasonName() string {
	switch p.Reason {
	case openflow13.PR_ADD:
		return "add"
	case openflow13.PR_DELETE:
		return "delete"
	case openflow13.PR_MODIFY:
		return "modify"
	}
	return fmt.Sprintf("reason_%d", p.Reason)
}

// parsePortStatus decodes OFPT_PORT_STATUS. libOpenflow's PortStatus
// decodes into a zero PhyPort whose nil HWAddr and Name slices silently stay
// empty, and it does not check lengths: validated here, port decoded by parsePort.
func parsePortStatus(b []byte) (PortStatus, error) {
	if _, err := parseHeader(b); err != nil {
		return PortStatus{}, err
	}
	if len(b) != 16+portLen {
		return PortStatus{}, malformed("OFPT_PORT_STATUS: %d bytes, want %d", len(b), 16+portLen)
	}
	p, err := parsePort(b[16:])
	if err != nil {
		return PortStatus{}, err
	}
	return PortStatus{Reason: b[8], Port: p}, nil
}

// multipartPart is one OFPT_MULTIPART_REPLY.
type multipartPart struct {
	Type  uint16
	Flags uint16
	Body  []byte
}

// More reports OFPMPF_REPLY_MORE: further replies follow.
func (p multipartPart) More() bool { return p.Flags&openflow13.OFPMPF_REPLY_MORE != 0 }

func parseMultipartReply(b []byte) (multipartPart, error) {
	h, err := parseHeader(b)
	if err != nil {
		return multipartPart{}, err
	}
	if h.Type != typeMultipartReply || len(b) < 16 {
		return multipartPart{}, malformed("%s of %d bytes is not a multipart reply", MsgTypeName(h.Type), len(b))
	}
	return multipartPart{
		Type:  binary.BigEndian.Uint16(b[8:10]),
		Flags: binary.BigEndian.Uint16(b[10:12]),
		Body:  b[16:],
	}, nil
}

// PortStats is an OpenFlow 1.3 ofp_port_stats. (libOpenflow's PortStats and
// PortStatsRequest have the OpenFlow 1.0 layout: 16-bit port numbers and no
// duration, so both are encoded and decoded here.)
type PortStats struct {
	PortNo     uint32
	RxPackets  uint64
	TxPackets  uint64
	RxBytes    uint64
	TxBytes    uint64
	RxDropped  uint64
	TxDropped  uint64
	RxErrors   uint64
	TxErrors   uint64
	RxFrameErr uint64
	RxOverErr  uint64
	RxCRCErr   uint64
	Collisions uint64
	Duration   time.Duration // how long the port has been in the switch
}

const portStatsLen = 112

func parsePortStats(body []byte) ([]PortStats, error) {
	if len(body)%portStatsLen != 0 {
		return nil, malformed("OFPMP_PORT_STATS: body of %d bytes is not a multiple of %d", len(body), portStatsLen)
	}
	out := make([]PortStats, 0, len(body)/portStatsLen)
	for ; len(body) > 0; body = body[portStatsLen:] {
		var c [12]uint64
		for i := range c {
			c[i] = binary.BigEndian.Uint64(body[8+8*i:])
		}
		out = append(out, PortStats{
			PortNo:    binary.BigEndian.Uint32(body[0:4]),
			RxPackets: c[0], TxPackets: c[1], RxBytes: c[2], TxBytes: c[3],
			RxDropped: c[4], TxDropped: c[5], RxErrors: c[6], TxErrors: c[7],
			RxFrameErr: c[8], RxOverErr: c[9], RxCRCErr: c[10], Collisions: c[11],
			Duration: duration(body[104:112]),
		})
	}
	return out, nil
}

// duration decodes a (sec uint32, nsec uint32) pair.
func duration(b []byte) time.Duration {
	return time.Duration(binary.BigEndian.Uint32(b[0:4]))*time.Second +
		time.Duration(binary.BigEndian.Uint32(b[4:8]))
}

func parsePortDesc(body []byte) ([]Port, error) {
	if len(body)%portLen != 0 {
		return nil, malformed("OFPMP_PORT_DESC: body of %d bytes is not a multiple of %d", len(body), portLen)
	}
	out := make([]Port, 0, len(body)/portLen)
	for ; len(body) > 0; body = body[portLen:] {
		p, err := parsePort(body[:portLen])
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// bundleCtrl is the body of an ONF bundle control message.
type bundleCtrl struct {
	ID    uint32
	Type  uint16
	Flags uint16
}

// parseBundleCtrl decodes an ONF bundle control reply.
func parseBundleCtrl(b []byte) (bundleCtrl, error) {
	h, err := parseHeader(b)
	if err != nil {
		return bundleCtrl{}, err
	}
	if h.Type != typeExperimenter || len(b) < 24 ||
		binary.BigEndian.Uint32(b[8:12]) != onfExperimenter || binary.BigEndian.Uint32(b[12:16]) != expBundleCtrl {
		return bundleCtrl{}, malformed("%s of %d bytes is not a bundle control message", MsgTypeName(h.Type), len(b))
	}
	var bc openflow13.BundleControl
	if err := guard("bundle control", func() error { return bc.UnmarshalBinary(b[16:]) }); err != nil {
		return bundleCtrl{}, err
	}
	return bundleCtrl{ID: bc.BundleID, Type: bc.Type, Flags: bc.Flags}, nil
}

// decodeMessage decodes a reply from the switch into a libOpenflow type,
// for Request callers. Only types whose libOpenflow decoders terminate are
// accepted (its HELLO decoder loops forever on unknown elements, and its
// experimenter decoder parses embedded messages recursively); decoder
// panics are recovered.
func decodeMessage(b []byte) (msg util.Message, err error) {
	h, err := parseHeader(b)
	if err != nil {
		return nil, err
	}
	switch h.Type {
	case typeEchoReply, typeBarrierReply, typeMultipartReply, openflow13.Type_GetConfigReply,
		openflow13.Type_PacketIn, openflow13.Type_FlowRemoved:
	case typeFeaturesReply:
		if len(b) > 32 {
			b = bytes.Clone(b[:32]) // libOpenflow reads OpenFlow 1.0 ports from extra bytes
			binary.BigEndian.PutUint16(b[2:4], 32)
		}
	case typeExperimenter:
		if _, err := parseBundleCtrl(b); err != nil {
			return nil, malformed("experimenter message: only bundle control replies are decoded")
		}
	default:
		return nil, malformed("%s: no decoder", MsgTypeName(h.Type))
	}
	err = guard(MsgTypeName(h.Type), func() error {
		var perr error
		msg, perr = openflow13.Parse(b)
		return perr
	})
	if errors.Is(err, ErrMalformed) {
		return nil, err
	}
	if err != nil {
		return nil, malformed("%s: %v", MsgTypeName(h.Type), err)
	}
	if msg == nil {
		return nil, malformed("%s: not decodable by libOpenflow", MsgTypeName(h.Type))
	}
	return msg, nil
}
