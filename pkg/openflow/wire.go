package openflow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/contiv/libOpenflow/common"
	"github.com/contiv/libOpenflow/openflow13"
	"github.com/contiv/libOpenflow/util"
)

// Wire constants of OpenFlow 1.3 and the ONF bundle extension.
const (
	ofVersion = openflow13.VERSION // 0x04
	headerLen = 8
	maxMsgLen = 0xffff

	typeHello            = openflow13.Type_Hello
	typeError            = openflow13.Type_Error
	typeEchoRequest      = openflow13.Type_EchoRequest
	typeEchoReply        = openflow13.Type_EchoReply
	typeExperimenter     = openflow13.Type_Experimenter
	typeFeaturesRequest  = openflow13.Type_FeaturesRequest
	typeFeaturesReply    = openflow13.Type_FeaturesReply
	typePortStatus       = openflow13.Type_PortStatus
	typeFlowMod          = openflow13.Type_FlowMod
	typeMultipartRequest = openflow13.Type_MultiPartRequest
	typeMultipartReply   = openflow13.Type_MultiPartReply
	typeBarrierRequest   = openflow13.Type_BarrierRequest
	typeBarrierReply     = openflow13.Type_BarrierReply

	expBundleCtrl = openflow13.Type_BundleCtrl // 2300
	expBundleAdd  = openflow13.Type_BundleAdd  // 2301
)

// header is the fixed ofp_header.
type header struct {
	Version uint8
	Type    uint8
	Length  uint16
	Xid     uint32
}

func parseHeader(b []byte) (header, error) {
	if len(b) < headerLen {
		return header{}, malformed("%d bytes, shorter than the 8-byte header", len(b))
	}
	h := header{Version: b[0], Type: b[1], Length: binary.BigEndian.Uint16(b[2:4]), Xid: binary.BigEndian.Uint32(b[4:8])}
	if int(h.Length) != len(b) {
		return h, malformed("%s: header length %d, message has %d bytes", MsgTypeName(h.Type), h.Length, len(b))
	}
	return h, nil
}

// readFrame reads one message: the header, then as many bytes as its length
// says. The returned slice is freshly allocated. A length below 8 cannot be
// framed and is an error; a clean close before a header is io.EOF.
func readFrame(r io.Reader) ([]byte, error) {
	var h [headerLen]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(h[2:4]))
	if n < headerLen {
		return nil, malformed("%s: length %d shorter than the header", MsgTypeName(h[1]), n)
	}
	b := make([]byte, n)
	copy(b, h[:])
	if _, err := io.ReadFull(r, b[headerLen:]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("reading %s body: %w", MsgTypeName(h[1]), err)
	}
	return b, nil
}

// encode marshals msg and stamps version 1.3, the real length and xid into
// its header. It works around libOpenflow marshalling bugs:
//   - FlowMod writes OutPort where OutGroup belongs (patched from the struct);
//   - FlowMod.Len omits instructions of delete commands though MarshalBinary
//     writes them, so the header length is taken from the bytes;
//   - some constructors leave the header version 0 (PortMod), so it is set;
//   - Marshal of incomplete structs may panic (nil Data): recovered.
func encode(msg util.Message, xid uint32) (b []byte, err error) {
	if msg == nil {
		return nil, errors.New("openflow: nil message")
	}
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("openflow: marshal %T: panic: %v", msg, r)
		}
	}()
	b, err = msg.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("openflow: marshal %T: %w", msg, err)
	}
	if len(b) < headerLen || len(b) > maxMsgLen {
		return nil, fmt.Errorf("openflow: marshal %T: %d bytes (want %d..%d)", msg, len(b), headerLen, maxMsgLen)
	}
	stamp(b, xid)
	if fm, ok := msg.(*openflow13.FlowMod); ok && len(b) >= 48 {
		binary.BigEndian.PutUint32(b[40:44], fm.OutGroup)
	}
	return b, nil
}

// stamp sets version, length and xid of an encoded message.
func stamp(b []byte, xid uint32) {
	b[0] = ofVersion
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
	binary.BigEndian.PutUint32(b[4:8], xid)
}

// newMessage builds a message of the given type with body.
func newMessage(typ uint8, body []byte) []byte {
	b := make([]byte, headerLen+len(body))
	b[1] = typ
	copy(b[headerLen:], body)
	stamp(b, 0)
	return b
}

// helloBytes is our HELLO: version 1.3 with a version bitmap holding only
// 1.3. libOpenflow's NewHello also advertises OpenFlow 1.0 in the bitmap,
// which would let a 1.0-only switch believe 1.0 was agreed.
func helloBytes() ([]byte, error) {
	h, err := common.NewHello(ofVersion)
	if err != nil {
		return nil, err
	}
	bm := common.NewHelloElemVersionBitmap()
	bm.Bitmaps[0] = 1 << ofVersion
	h.Elements = []common.HelloElem{bm}
	return encode(h, 0)
}

// parseHello returns the version in a HELLO header and its version bitmap
// (nil without a bitmap element). libOpenflow's Hello decoder loops forever
// on unknown elements and reads past an element's length, so this is ours.
func parseHello(b []byte) (uint8, []uint32, error) {
	h, err := parseHeader(b)
	if err != nil {
		return 0, nil, err
	}
	var bitmap []uint32
	for rest := b[headerLen:]; len(rest) > 0; {
		if len(rest) < 4 {
			return h.Version, nil, malformed("OFPT_HELLO: %d trailing bytes", len(rest))
		}
		typ, n := binary.BigEndian.Uint16(rest[0:2]), int(binary.BigEndian.Uint16(rest[2:4]))
		if n < 4 || n > len(rest) {
			return h.Version, nil, malformed("OFPT_HELLO: element length %d of %d bytes left", n, len(rest))
		}
		if typ == common.HelloElemType_VersionBitmap {
			for i := 4; i+4 <= n; i += 4 {
				bitmap = append(bitmap, binary.BigEndian.Uint32(rest[i:i+4]))
			}
		}
		padded := (n + 7) / 8 * 8
		if padded > len(rest) {
			padded = len(rest)
		}
		rest = rest[padded:]
	}
	return h.Version, bitmap, nil
}

// negotiate decides whether the peer's HELLO allows OpenFlow 1.3.
func negotiate(peerVersion uint8, bitmap []uint32) error {
	if len(bitmap) > 0 {
		if bitmap[0]&(1<<ofVersion) != 0 {
			return nil
		}
	} else if peerVersion >= ofVersion {
		return nil
	}
	return &VersionError{PeerVersion: peerVersion, PeerBitmap: bitmap}
}

// helloFailedBytes is the OFPT_ERROR (HELLO_FAILED/INCOMPATIBLE) sent to a
// switch that cannot speak 1.3, in the switch's own version.
func helloFailedBytes(peerVersion uint8) []byte {
	body := append([]byte{0, openflow13.ET_HELLO_FAILED, 0, openflow13.HFC_INCOMPATIBLE}, "only OpenFlow 1.3 is supported"...)
	b := newMessage(typeError, body)
	b[0] = peerVersion
	return b
}

// asyncConfigBytes is OFPT_SET_CONFIG (miss_send_len = OFPCML_NO_BUFFER)
// followed by OFPT_SET_ASYNC enabling port-status messages only, for both
// master/equal and slave roles.
func asyncConfigBytes(xidConfig, xidAsync uint32) []byte {
	setConfig := newMessage(openflow13.Type_SetConfig, []byte{0, 0, 0xff, 0xff})
	stamp(setConfig, xidConfig)
	body := make([]byte, 24) // packet_in_mask[2], port_status_mask[2], flow_removed_mask[2]
	allReasons := uint32(1<<openflow13.PR_ADD | 1<<openflow13.PR_DELETE | 1<<openflow13.PR_MODIFY)
	binary.BigEndian.PutUint32(body[8:12], allReasons)
	binary.BigEndian.PutUint32(body[12:16], allReasons)
	setAsync := newMessage(openflow13.Type_SetAsync, body)
	stamp(setAsync, xidAsync)
	return append(setConfig, setAsync...)
}
