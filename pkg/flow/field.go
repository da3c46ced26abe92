package flow

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

// Field is a packet or pipeline field that flows match, set, load or move.
// Only the fields the pipeline needs are defined.
type Field uint8

// The fields. FieldReg0+i is register i.
const (
	FieldInPort Field = iota + 1
	FieldEthDst
	FieldEthSrc
	FieldEthType
	FieldIPv4Src
	FieldIPv4Dst
	FieldArpOp
	FieldArpSpa
	FieldArpTpa
	FieldArpSha
	FieldArpTha
	FieldTunID
	FieldTunSrc
	FieldTunDst
	FieldReg0
	FieldReg1
	FieldReg2
	FieldReg3
	FieldReg4
	FieldReg5
	FieldReg6
	FieldReg7
	fieldEnd
)

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

// valueFormat is how ovs-ofctl prints a field's value.
type valueFormat uint8

const (
	fmtDecimal valueFormat = iota
	fmtHex
	fmtMAC
	fmtIPv4
)

// OXM/NXM classes.
const (
	classNXM0  uint16 = 0x0000
	classNXM1  uint16 = 0x0001
	classBasic uint16 = 0x8000
)

// header is an OXM/NXM TLV header: class(16) | field(7) | hasmask(1) | length(8).
type header uint32

func mkHeader(class uint16, field uint8, length int) header {
	return header(uint32(class)<<16 | uint32(field)<<9 | uint32(length))
}

func (h header) class() uint16 { return uint16(h >> 16) }
func (h header) field() uint8  { return uint8(h>>9) & 0x7f }
func (h header) hasMask() bool { return h&hasMaskBit != 0 }

// hasMaskBit is the header bit of a masked TLV.
const hasMaskBit = 0x100

func (h header) length() int { return int(h & 0xff) }

// id is the header without the mask bit and length: the field's identity.
func (h header) id() uint32 { return uint32(h) &^ 0x1ff }

// fieldInfo describes a field: its names, wire headers and width.
type fieldInfo struct {
	name     string // ovs-fields(7) name, as set_field prints it
	nxmName  string // NXM name, as move and load print it
	nxm      header // NXM header, used by move and load
	oxm      header // OpenFlow 1.3 OXM header, used in matches and set_field; 0 if none
	bytes    int    // width on the wire
	prereq   uint16 // eth_type required to match or write the field; 0 if none
	writable bool
	format   valueFormat
}

// info returns the field's description; ok is false for an unknown field.
func (f Field) info() (fieldInfo, bool) {
	if f >= FieldReg0 && f <= FieldReg7 {
		n := uint8(f - FieldReg0)
		// Slices of constants: info runs for every field of every flow
		// encoded, and formatting the names showed in profiles.
		const names, nxmNames = "reg0reg1reg2reg3reg4reg5reg6reg7", "0123456789"
		return fieldInfo{name: names[4*n : 4*n+4], nxmName: "NXM_NX_REG" + nxmNames[n:n+1],
			nxm: mkHeader(classNXM1, n, 4), bytes: 4, writable: true, format: fmtHex}, true
	}
	switch f {
	case FieldInPort:
		return fieldInfo{"in_port", "NXM_OF_IN_PORT", mkHeader(classNXM0, 0, 2), mkHeader(classBasic, 0, 4), 4, 0, false, fmtDecimal}, true
	case FieldEthDst:
		return fieldInfo{"eth_dst", "NXM_OF_ETH_DST", mkHeader(classNXM0, 1, 6), mkHeader(classBasic, 3, 6), 6, 0, true, fmtMAC}, true
	case FieldEthSrc:
		return fieldInfo{"eth_src", "NXM_OF_ETH_SRC", mkHeader(classNXM0, 2, 6), mkHeader(classBasic, 4, 6), 6, 0, true, fmtMAC}, true
	case FieldEthType:
		return fieldInfo{"eth_type", "NXM_OF_ETH_TYPE", mkHeader(classNXM0, 3, 2), mkHeader(classBasic, 5, 2), 2, 0, false, fmtHex}, true
	case FieldIPv4Src:
		return fieldInfo{"ip_src", "NXM_OF_IP_SRC", mkHeader(classNXM0, 7, 4), mkHeader(classBasic, 11, 4), 4, EthTypeIPv4, true, fmtIPv4}, true
	case FieldIPv4Dst:
		return fieldInfo{"ip_dst", "NXM_OF_IP_DST", mkHeader(classNXM0, 8, 4), mkHeader(classBasic, 12, 4), 4, EthTypeIPv4, true, fmtIPv4}, true
	case FieldArpOp:
		return fieldInfo{"arp_op", "NXM_OF_ARP_OP", mkHeader(classNXM0, 15, 2), mkHeader(classBasic, 21, 2), 2, EthTypeARP, true, fmtDecimal}, true
	case FieldArpSpa:
		return fieldInfo{"arp_spa", "NXM_OF_ARP_SPA", mkHeader(classNXM0, 16, 4), mkHeader(classBasic, 22, 4), 4, EthTypeARP, true, fmtIPv4}, true
	case FieldArpTpa:
		return fieldInfo{"arp_tpa", "NXM_OF_ARP_TPA", mkHeader(classNXM0, 17, 4), mkHeader(classBasic, 23, 4), 4, EthTypeARP, true, fmtIPv4}, true
	case FieldArpSha:
		return fieldInfo{"arp_sha", "NXM_NX_ARP_SHA", mkHeader(classNXM1, 17, 6), mkHeader(classBasic, 24, 6), 6, EthTypeARP, true, fmtMAC}, true
	case FieldArpTha:
		return fieldInfo{"arp_tha", "NXM_NX_ARP_THA", mkHeader(classNXM1, 18, 6), mkHeader(classBasic, 25, 6), 6, EthTypeARP, true, fmtMAC}, true
	case FieldTunID:
		return fieldInfo{"tun_id", "NXM_NX_TUN_ID", mkHeader(classNXM1, 16, 8), mkHeader(classBasic, 38, 8), 8, 0, true, fmtHex}, true
	case FieldTunSrc:
		return fieldInfo{"tun_src", "NXM_NX_TUN_IPV4_SRC", mkHeader(classNXM1, 31, 4), 0, 4, 0, true, fmtIPv4}, true
	case FieldTunDst:
		return fieldInfo{"tun_dst", "NXM_NX_TUN_IPV4_DST", mkHeader(classNXM1, 32, 4), 0, 4, 0, true, fmtIPv4}, true
	}
	return fieldInfo{}, false
}

// String is the field's ovs-fields(7) name.
func (f Field) String() string {
	if fi, ok := f.info(); ok {
		return fi.name
	}
	return fmt.Sprintf("field%d", uint8(f))
}

// Bits is the field's width in bits (in_port: 32, as in OpenFlow 1.3).
func (f Field) Bits() int {
	fi, _ := f.info()
	return fi.bytes * 8
}

// wire is the header used for the field in OpenFlow 1.3 matches and set_field.
func (fi fieldInfo) wire() header {
	if fi.oxm != 0 {
		return fi.oxm
	}
	return fi.nxm
}

// fieldByHeader finds the field whose OXM or NXM header has h's class and
// field number.
func fieldByHeader(h header) (Field, fieldInfo, bool) {
	for f := FieldInPort; f < fieldEnd; f++ {
		fi, _ := f.info()
		if fi.nxm.id() == h.id() || (fi.oxm != 0 && fi.oxm.id() == h.id()) {
			return f, fi, true
		}
	}
	return 0, fieldInfo{}, false
}

// fullMask is the all-ones mask of an n-byte field.
func fullMask(n int) uint64 {
	if n >= 8 {
		return ^uint64(0)
	}
	return 1<<(8*n) - 1
}

// putValue writes the low n bytes of v big-endian.
func putValue(b []byte, v uint64, n int) {
	var tmp [8]byte
	binary.BigEndian.PutUint64(tmp[:], v)
	copy(b, tmp[8-n:])
}

// getValue reads n big-endian bytes.
func getValue(b []byte) uint64 {
	var tmp [8]byte
	copy(tmp[8-len(b):], b)
	return binary.BigEndian.Uint64(tmp[:])
}

func macToU64(m net.HardwareAddr) uint64 { return getValue(m) }

func u64ToMAC(v uint64) net.HardwareAddr {
	m := make(net.HardwareAddr, 6)
	putValue(m, v, 6)
	return m
}

func addrToU64(a netip.Addr) uint64 {
	b := a.As4()
	return uint64(binary.BigEndian.Uint32(b[:]))
}

func u64ToAddr(v uint64) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(v))
	return netip.AddrFrom4(b)
}

// cHex formats like C's "%#x": "0" for zero, "0x..." otherwise.
func cHex(v uint64) string {
	if v == 0 {
		return "0"
	}
	return fmt.Sprintf("%#x", v)
}

// formatValue prints a field value the way ovs-ofctl's set_field does.
func (fi fieldInfo) formatValue(v uint64) string {
	switch fi.format {
	case fmtHex:
		return cHex(v)
	case fmtMAC:
		return u64ToMAC(v).String()
	case fmtIPv4:
		return u64ToAddr(v).String()
	}
	return fmt.Sprint(v)
}
