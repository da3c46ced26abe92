package flow

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

// Header is an OXM/NXM TLV header: class(16) | field(7) | hasmask(1) |
// length(8).
type Header uint32

// OXM/NXM classes.
const (
	ClassNXM0  uint16 = 0x0000 // Nicira NXM_OF_*
	ClassNXM1  uint16 = 0x0001 // Nicira NXM_NX_*
	ClassBasic uint16 = 0x8000 // OpenFlow 1.3 OFPXMC_OPENFLOW_BASIC
)

// MakeHeader is the header of field number field in class for a value of
// length bytes, without mask.
func MakeHeader(class uint16, field uint8, length int) Header {
	return Header(uint32(class)<<16 | uint32(field)<<9 | uint32(length))
}

func (h Header) class() uint16 { return uint16(h >> 16) }
func (h Header) field() uint8  { return uint8(h>>9) & 0x7f }
func (h Header) hasMask() bool { return h&hasMaskBit != 0 }
func (h Header) length() int   { return int(h & 0xff) }

// hasMaskBit is the header bit of a masked TLV.
const hasMaskBit = 0x100

// id is the header without the mask bit and length: the field's identity.
func (h Header) id() uint32 { return uint32(h) &^ 0x1ff }

// MaskKind says which masks a match on a field may carry.
type MaskKind uint8

// Mask kinds.
const (
	ExactOnly MaskKind = iota // no mask
	AnyMask                   // any bits
	CIDRMask                  // leading ones: an address prefix
)

// FieldSpec declares a field: everything pkg/flow needs to match it, write
// it, encode it, decode it back from flow stats and print it as ovs-ofctl
// does. A new field is one FieldSpec given to DeclareField (and, to be
// decoded from flow stats, added to a Vocabulary).
type FieldSpec struct {
	// Name is the ovs-fields(7) name, as set_field and ofproto/trace
	// print it ("eth_src").
	Name string
	// MatchName is the name ovs-ofctl prints in a match when it differs
	// from Name ("dl_src").
	MatchName string
	// NXMName is the name move and load print ("NXM_OF_ETH_SRC").
	NXMName string
	// NXM is the Nicira header, used by move and load, and in matches and
	// set_field when OXM is 0.
	NXM Header
	// OXM is the OpenFlow 1.3 header used in matches and set_field; 0 if
	// the field has none.
	OXM Header
	// Bytes is the width on the wire, 1 to 16.
	Bytes int
	// Prereq is the eth_type a flow must match to match or write the
	// field; 0 for none.
	Prereq uint16
	// Writable fields may be set, loaded and moved into.
	Writable bool
	// Masks is what masks a match may carry.
	Masks MaskKind
	// Format prints values as ovs-ofctl does.
	Format Format
	// PrintOrder is the field's position in a match as ovs-ofctl prints it
	// (match_format in OVS's lib/match.c): lower first.
	PrintOrder int
	// WireOrder is the field's position in the OXM match this package
	// encodes (the order of OVS's own encoder, nx_put_raw): lower first.
	WireOrder int
}

// Field is a declared field. The zero Field is no field. Fields compare
// equal when they come from the same declaration.
type Field struct{ s *FieldSpec }

// DeclareField checks s and returns its Field. It panics on a malformed
// declaration: declarations are package-level values checked by tests.
func DeclareField(s FieldSpec) Field {
	switch {
	case s.Name == "" || s.Bytes < 1 || s.Bytes > valueBytes || s.Format == nil:
		panic(fmt.Sprintf("flow: field %q: name, bytes (1..%d) and format are required", s.Name, valueBytes))
	case s.NXM == 0 && s.OXM == 0:
		panic(fmt.Sprintf("flow: field %s has no header", s.Name))
	}
	if s.MatchName == "" {
		s.MatchName = s.Name
	}
	return Field{&s}
}

// IsZero reports whether f is no field.
func (f Field) IsZero() bool { return f.s == nil }

// String is the field's ovs-fields(7) name.
func (f Field) String() string {
	if f.s == nil {
		return "<no field>"
	}
	return f.s.Name
}

// Spec is the field's declaration (a copy).
func (f Field) Spec() FieldSpec { return *f.s }

// Bits is the field's width in bits (in_port: 32, as in OpenFlow 1.3).
func (f Field) Bits() int { return f.s.Bytes * 8 }

// wire is the header used for the field in matches and set_field.
func (f Field) wire() Header {
	if f.s.OXM != 0 {
		return f.s.OXM
	}
	return f.s.NXM
}

// The fields of the pipeline. Registers are Reg(0) to Reg(7).
var (
	FieldInPort = DeclareField(FieldSpec{Name: "in_port", NXMName: "NXM_OF_IN_PORT",
		NXM: MakeHeader(ClassNXM0, 0, 2), OXM: MakeHeader(ClassBasic, 0, 4), Bytes: 4,
		Format: portFormat{}, PrintOrder: 50, WireOrder: 10})
	FieldEthDst = DeclareField(FieldSpec{Name: "eth_dst", MatchName: "dl_dst", NXMName: "NXM_OF_ETH_DST",
		NXM: MakeHeader(ClassNXM0, 1, 6), OXM: MakeHeader(ClassBasic, 3, 6), Bytes: 6, Writable: true,
		Masks: AnyMask, Format: MACFormat, PrintOrder: 61, WireOrder: 20})
	FieldEthSrc = DeclareField(FieldSpec{Name: "eth_src", MatchName: "dl_src", NXMName: "NXM_OF_ETH_SRC",
		NXM: MakeHeader(ClassNXM0, 2, 6), OXM: MakeHeader(ClassBasic, 4, 6), Bytes: 6, Writable: true,
		Masks: AnyMask, Format: MACFormat, PrintOrder: 60, WireOrder: 21})
	FieldEthType = DeclareField(FieldSpec{Name: "eth_type", MatchName: "dl_type", NXMName: "NXM_OF_ETH_TYPE",
		NXM: MakeHeader(ClassNXM0, 3, 2), OXM: MakeHeader(ClassBasic, 5, 2), Bytes: 2,
		Format: ethTypeFormat{}, PrintOrder: 65, WireOrder: 22})
	FieldIPv4Src = DeclareField(FieldSpec{Name: "ip_src", MatchName: "nw_src", NXMName: "NXM_OF_IP_SRC",
		NXM: MakeHeader(ClassNXM0, 7, 4), OXM: MakeHeader(ClassBasic, 11, 4), Bytes: 4, Prereq: EthTypeIPv4,
		Writable: true, Masks: CIDRMask, Format: AddrFormat, PrintOrder: 70, WireOrder: 30})
	FieldIPv4Dst = DeclareField(FieldSpec{Name: "ip_dst", MatchName: "nw_dst", NXMName: "NXM_OF_IP_DST",
		NXM: MakeHeader(ClassNXM0, 8, 4), OXM: MakeHeader(ClassBasic, 12, 4), Bytes: 4, Prereq: EthTypeIPv4,
		Writable: true, Masks: CIDRMask, Format: AddrFormat, PrintOrder: 71, WireOrder: 31})
	FieldArpOp = DeclareField(FieldSpec{Name: "arp_op", NXMName: "NXM_OF_ARP_OP",
		NXM: MakeHeader(ClassNXM0, 15, 2), OXM: MakeHeader(ClassBasic, 21, 2), Bytes: 2, Prereq: EthTypeARP,
		Writable: true, Format: DecimalFormat, PrintOrder: 75, WireOrder: 40})
	FieldArpSpa = DeclareField(FieldSpec{Name: "arp_spa", NXMName: "NXM_OF_ARP_SPA",
		NXM: MakeHeader(ClassNXM0, 16, 4), OXM: MakeHeader(ClassBasic, 22, 4), Bytes: 4, Prereq: EthTypeARP,
		Writable: true, Masks: CIDRMask, Format: AddrFormat, PrintOrder: 70, WireOrder: 41})
	FieldArpTpa = DeclareField(FieldSpec{Name: "arp_tpa", NXMName: "NXM_OF_ARP_TPA",
		NXM: MakeHeader(ClassNXM0, 17, 4), OXM: MakeHeader(ClassBasic, 23, 4), Bytes: 4, Prereq: EthTypeARP,
		Writable: true, Masks: CIDRMask, Format: AddrFormat, PrintOrder: 71, WireOrder: 42})
	FieldArpSha = DeclareField(FieldSpec{Name: "arp_sha", NXMName: "NXM_NX_ARP_SHA",
		NXM: MakeHeader(ClassNXM1, 17, 6), OXM: MakeHeader(ClassBasic, 24, 6), Bytes: 6, Prereq: EthTypeARP,
		Writable: true, Format: MACFormat, PrintOrder: 80, WireOrder: 43})
	FieldArpTha = DeclareField(FieldSpec{Name: "arp_tha", NXMName: "NXM_NX_ARP_THA",
		NXM: MakeHeader(ClassNXM1, 18, 6), OXM: MakeHeader(ClassBasic, 25, 6), Bytes: 6, Prereq: EthTypeARP,
		Writable: true, Format: MACFormat, PrintOrder: 81, WireOrder: 44})
	FieldTunID = DeclareField(FieldSpec{Name: "tun_id", NXMName: "NXM_NX_TUN_ID",
		NXM: MakeHeader(ClassNXM1, 16, 8), OXM: MakeHeader(ClassBasic, 38, 8), Bytes: 8, Writable: true,
		Masks: AnyMask, Format: HexFormat, PrintOrder: 40, WireOrder: 50})
	FieldTunSrc = DeclareField(FieldSpec{Name: "tun_src", NXMName: "NXM_NX_TUN_IPV4_SRC",
		NXM: MakeHeader(ClassNXM1, 31, 4), Bytes: 4, Writable: true,
		Masks: CIDRMask, Format: AddrFormat, PrintOrder: 41, WireOrder: 51})
	FieldTunDst = DeclareField(FieldSpec{Name: "tun_dst", NXMName: "NXM_NX_TUN_IPV4_DST",
		NXM: MakeHeader(ClassNXM1, 32, 4), Bytes: 4, Writable: true,
		Masks: CIDRMask, Format: AddrFormat, PrintOrder: 42, WireOrder: 52})
)

// registers are reg0..reg7 (NXM_NX_REG0..7, 32 bits each).
var registers = func() (r [8]Field) {
	for i := range r {
		r[i] = DeclareField(FieldSpec{Name: fmt.Sprintf("reg%d", i), NXMName: fmt.Sprintf("NXM_NX_REG%d", i),
			NXM: MakeHeader(ClassNXM1, uint8(i), 4), Bytes: 4, Writable: true, Masks: AnyMask,
			Format: HexFormat, PrintOrder: 30 + i, WireOrder: 60 + i})
	}
	return r
}()

// Reg is register i (0..7); the zero Field for another i.
func Reg(i int) Field {
	if i < 0 || i >= len(registers) {
		return Field{}
	}
	return registers[i]
}

// Ethernet types with an ovs-ofctl shorthand.
const (
	EthTypeIPv4 uint16 = 0x0800
	EthTypeARP  uint16 = 0x0806
	EthTypeIPv6 uint16 = 0x86dd
)

// ARP opcodes.
const (
	ArpRequest uint16 = 1
	ArpReply   uint16 = 2
)

// valueBytes is the widest field value.
const valueBytes = 16

// Value is a field value or mask: big-endian, right-aligned in 16 bytes (a
// field of n bytes uses the last n).
type Value [valueBytes]byte

// U64 is v as a Value.
func U64(v uint64) Value {
	var x Value
	binary.BigEndian.PutUint64(x[8:], v)
	return x
}

// MACValue is a MAC address as a Value; ok is false unless it has 6 bytes.
func MACValue(mac net.HardwareAddr) (v Value, ok bool) {
	if len(mac) != 6 {
		return Value{}, false
	}
	copy(v[10:], mac)
	return v, true
}

// AddrValue is an IP address as a Value (IPv4 in the last 4 bytes).
func AddrValue(a netip.Addr) Value {
	var v Value
	if a.Is4() {
		b := a.As4()
		copy(v[12:], b[:])
	} else if a.Is6() {
		v = a.As16()
	}
	return v
}

// U64 is the low 64 bits of v.
func (v Value) U64() uint64 { return binary.BigEndian.Uint64(v[8:]) }

// bytes is the value on the wire for an n-byte field.
func (v *Value) bytes(n int) []byte { return v[valueBytes-n:] }

// and is v & m.
func (v Value) and(m Value) Value {
	for i := range v {
		v[i] &= m[i]
	}
	return v
}

// ones is the all-ones mask of an n-byte field.
func ones(n int) Value {
	var v Value
	for i := valueBytes - n; i < valueBytes; i++ {
		v[i] = 0xff
	}
	return v
}

// fits reports whether v has no bits beyond n bytes.
func (v Value) fits(n int) bool {
	for _, b := range v[:valueBytes-n] {
		if b != 0 {
			return false
		}
	}
	return true
}

func valueOf(b []byte) Value {
	var v Value
	copy(v[valueBytes-len(b):], b)
	return v
}
