package flow

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"

	"github.com/contiv/libOpenflow/openflow13"
)

// decodeMatch turns TLVs (validated by splitTLVs) into a Match.
func decodeMatch(tlvs [][]byte) (Match, error) {
	var m Match
	seen := map[Field]bool{}
	for _, t := range tlvs {
		h := header(binary.BigEndian.Uint32(t))
		f, fi, ok := fieldByHeader(h)
		if !ok || h.id() != fi.wire().id() {
			return Match{}, fmt.Errorf("%w: match field class 0x%04x field %d", ErrUnsupported, h.class(), h.field())
		}
		n := fi.bytes
		if h.hasMask() && h.length() != 2*n || !h.hasMask() && h.length() != n {
			return Match{}, fmt.Errorf("%w: %s of %d bytes", ErrMalformed, fi.name, h.length())
		}
		if seen[f] {
			return Match{}, fmt.Errorf("%w: %s twice", ErrMalformed, fi.name)
		}
		seen[f] = true
		e := entry{field: f, value: getValue(t[4 : 4+n]), mask: fullMask(n)}
		if h.hasMask() {
			e.mask = getValue(t[4+n : 4+2*n])
		}
		if err := m.set(e, fi); err != nil {
			return Match{}, err
		}
	}
	return m, nil
}

// set stores one entry in the match.
func (m *Match) set(e entry, fi fieldInfo) error {
	exact := e.mask == fullMask(fi.bytes)
	if !exact && e.field != FieldEthSrc && e.field != FieldEthDst && e.field != FieldTunID &&
		fi.format != fmtIPv4 && (e.field < FieldReg0 || e.field > FieldReg7) {
		return fmt.Errorf("%w: masked %s", ErrUnsupported, fi.name)
	}
	var err error
	switch e.field {
	case FieldInPort:
		m.InPort = uint32(e.value)
	case FieldEthSrc:
		m.EthSrc, m.EthSrcMask = macMask(e)
	case FieldEthDst:
		m.EthDst, m.EthDstMask = macMask(e)
	case FieldEthType:
		m.EthType = uint16(e.value)
	case FieldIPv4Src:
		m.IPv4Src, err = prefix(e, fi)
	case FieldIPv4Dst:
		m.IPv4Dst, err = prefix(e, fi)
	case FieldArpOp:
		m.ArpOp = uint16(e.value)
	case FieldArpSpa:
		m.ArpSpa, err = prefix(e, fi)
	case FieldArpTpa:
		m.ArpTpa, err = prefix(e, fi)
	case FieldArpSha:
		m.ArpSha = u64ToMAC(e.value)
	case FieldArpTha:
		m.ArpTha = u64ToMAC(e.value)
	case FieldTunID:
		m.TunID = Masked64{e.value, e.mask}
	case FieldTunSrc:
		m.TunSrc, err = prefix(e, fi)
	case FieldTunDst:
		m.TunDst, err = prefix(e, fi)
	default: // registers
		m.Regs[e.field-FieldReg0] = Masked32{uint32(e.value), uint32(e.mask)}
	}
	return err
}

func macMask(e entry) (mac, mask []byte) {
	if e.mask == fullMask(6) {
		return u64ToMAC(e.value), nil
	}
	return u64ToMAC(e.value), u64ToMAC(e.mask)
}

// prefix turns a CIDR-masked IPv4 value into a prefix.
func prefix(e entry, fi fieldInfo) (netip.Prefix, error) {
	mask := uint32(e.mask)
	ones := bits.LeadingZeros32(^mask)
	if ones == 0 || mask != ^uint32(0)<<(32-ones) {
		return netip.Prefix{}, fmt.Errorf("%w: %s mask %s is not a CIDR mask", ErrUnsupported, fi.name, u64ToAddr(e.mask))
	}
	return netip.PrefixFrom(u64ToAddr(e.value), ones), nil
}

// decodeInstructions accepts apply_actions then goto_table, each optional.
func decodeInstructions(b []byte) ([]Action, error) {
	var actions []Action
	gotoSeen, applySeen := false, false
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, fmt.Errorf("%w: %d-byte instruction", ErrMalformed, len(b))
		}
		typ, n := binary.BigEndian.Uint16(b[0:2]), int(binary.BigEndian.Uint16(b[2:4]))
		if n < 8 || n > len(b) {
			return nil, fmt.Errorf("%w: instruction of %d bytes with %d left", ErrMalformed, n, len(b))
		}
		switch {
		case typ == openflow13.InstrType_APPLY_ACTIONS && !applySeen && !gotoSeen:
			as, err := decodeActions(b[8:n])
			if err != nil {
				return nil, err
			}
			actions = append(actions, as...)
			applySeen = true
		case typ == openflow13.InstrType_GOTO_TABLE && !gotoSeen && n == 8:
			actions = append(actions, GotoTable{b[4]})
			gotoSeen = true
		default:
			return nil, fmt.Errorf("%w: instruction type %d (%d bytes) here", ErrUnsupported, typ, n)
		}
		b = b[n:]
	}
	return actions, nil
}

func decodeActions(b []byte) ([]Action, error) {
	var out []Action
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, fmt.Errorf("%w: %d-byte action", ErrMalformed, len(b))
		}
		typ, n := binary.BigEndian.Uint16(b[0:2]), int(binary.BigEndian.Uint16(b[2:4]))
		if n < 8 || n%8 != 0 || n > len(b) {
			return nil, fmt.Errorf("%w: action of %d bytes with %d left", ErrMalformed, n, len(b))
		}
		a, err := decodeAction(typ, b[:n])
		if err != nil {
			return nil, err
		}
		out = append(out, a)
		b = b[n:]
	}
	return out, nil
}

const nxVendor = 0x00002320

func decodeAction(typ uint16, a []byte) (Action, error) {
	be := binary.BigEndian
	switch {
	case typ == openflow13.ActionType_Output && len(a) == 16:
		return Output{Port: be.Uint32(a[4:8])}, nil
	case typ == openflow13.ActionType_SetField:
		return decodeSetField(a)
	case typ == openflow13.ActionType_Experimenter && len(a) == 24 && be.Uint32(a[4:8]) == nxVendor:
		switch be.Uint16(a[8:10]) {
		case openflow13.NXAST_REG_MOVE:
			return decodeMove(a)
		case openflow13.NXAST_REG_LOAD:
			return decodeLoad(a)
		}
	}
	return nil, fmt.Errorf("%w: action type %d of %d bytes", ErrUnsupported, typ, len(a))
}

func decodeSetField(a []byte) (Action, error) {
	h := header(binary.BigEndian.Uint32(a[4:8]))
	f, fi, ok := fieldByHeader(h)
	if !ok || h.hasMask() || h.length() != fi.bytes || 8+fi.bytes > len(a) {
		return nil, fmt.Errorf("%w: set_field class 0x%04x field %d len %d", ErrUnsupported, h.class(), h.field(), h.length())
	}
	return SetField{Field: f, Value: getValue(a[8 : 8+fi.bytes])}, nil
}

// nxmSubfield resolves an NXM header plus bit range into a Subfield.
func nxmSubfield(h header, ofs, n int) (Subfield, error) {
	f, fi, ok := fieldByHeader(h)
	if !ok || h.hasMask() || h.length() != fi.bytes || n < 1 || ofs+n > fi.bytes*8 {
		return Subfield{}, fmt.Errorf("%w: NXM field class 0x%04x field %d bits %d+%d", ErrUnsupported, h.class(), h.field(), ofs, n)
	}
	return Subfield{Field: f, Ofs: uint8(ofs), Bits: uint8(n)}, nil
}

func decodeMove(a []byte) (Action, error) {
	be := binary.BigEndian
	n := int(be.Uint16(a[10:12]))
	src, err := nxmSubfield(header(be.Uint32(a[16:20])), int(be.Uint16(a[12:14])), n)
	if err != nil {
		return nil, err
	}
	dst, err := nxmSubfield(header(be.Uint32(a[20:24])), int(be.Uint16(a[14:16])), n)
	if err != nil {
		return nil, err
	}
	return Move{Src: src, Dst: dst}, nil
}

func decodeLoad(a []byte) (Action, error) {
	be := binary.BigEndian
	ofsNbits := be.Uint16(a[10:12])
	dst, err := nxmSubfield(header(be.Uint32(a[12:16])), int(ofsNbits>>6), int(ofsNbits&0x3f)+1)
	if err != nil {
		return nil, err
	}
	return Load{Dst: dst, Value: be.Uint64(a[16:24])}, nil
}
