package flow

import (
	"encoding/binary"
	"fmt"
	"maps"
)

// Vocabulary is the set of fields and action kinds that decoding knows:
// Stats.Flow decodes with Standard(), Stats.FlowIn with any vocabulary.
type Vocabulary struct {
	fields  map[uint32]Field        // by header id, OXM and NXM
	actions map[actionID]ActionKind // by type, experimenter, subtype
}

type actionID struct {
	typ          uint16
	experimenter uint32
	subtype      uint16
}

func (k ActionKind) id() actionID {
	if k.Type != ActionExperimenter {
		return actionID{typ: k.Type}
	}
	return actionID{k.Type, k.Experimenter, k.Subtype}
}

// With returns v also knowing fields and actions.
func (v Vocabulary) With(fields []Field, actions ...ActionKind) Vocabulary {
	out := Vocabulary{fields: maps.Clone(v.fields), actions: maps.Clone(v.actions)}
	if out.fields == nil {
		out.fields, out.actions = map[uint32]Field{}, map[actionID]ActionKind{}
	}
	for _, f := range fields {
		for _, h := range []Header{f.s.NXM, f.s.OXM} {
			if h != 0 {
				out.fields[h.id()] = f
			}
		}
	}
	for _, a := range actions {
		out.actions[a.id()] = a
	}
	return out
}

// standard is the vocabulary of the standard fields and actions.
var standard = Vocabulary{}.With(
	append([]Field{FieldInPort, FieldEthDst, FieldEthSrc, FieldEthType, FieldIPv4Src, FieldIPv4Dst, FieldArpOp,
		FieldArpSpa, FieldArpTpa, FieldArpSha, FieldArpTha, FieldTunID, FieldTunSrc, FieldTunDst}, registers[:]...),
	ActionKind{Name: "output", Type: ActionOutput, Decode: decodeOutput},
	ActionKind{Name: "set_field", Type: ActionSetField, Decode: decodeSetField},
	ActionKind{Name: "move", Type: ActionExperimenter, Experimenter: NiciraExperimenter, Subtype: nxastRegMove, Decode: decodeMove},
	ActionKind{Name: "load", Type: ActionExperimenter, Experimenter: NiciraExperimenter, Subtype: nxastRegLoad, Decode: decodeLoad},
)

// Standard is the vocabulary of this package's fields and actions.
func Standard() Vocabulary { return standard }

// Field is the known field with header h's class and field number.
func (v Vocabulary) Field(h Header) (Field, bool) {
	f, ok := v.fields[h.id()]
	return f, ok
}

// decodeMatch turns TLVs (validated by splitTLVs) into a Match.
func (v Vocabulary) decodeMatch(tlvs [][]byte) (Match, error) {
	fms := make([]FieldMatch, 0, len(tlvs))
	for _, t := range tlvs {
		h := Header(binary.BigEndian.Uint32(t))
		f, ok := v.Field(h)
		if !ok || h.id() != f.wire().id() {
			return Match{}, fmt.Errorf("%w: match field class 0x%04x field %d", ErrUnsupported, h.class(), h.field())
		}
		n := f.s.Bytes
		if h.hasMask() && h.length() != 2*n || !h.hasMask() && h.length() != n {
			return Match{}, fmt.Errorf("%w: %s of %d bytes", ErrMalformed, f, h.length())
		}
		fm := f.IsValue(valueOf(t[4:4+n]), ones(n))
		if h.hasMask() {
			fm = f.IsValue(valueOf(t[4:4+n]), valueOf(t[4+n:4+2*n]))
		}
		if _, cidr := prefixLen(fm.Mask, n); f.s.Masks == ExactOnly && !fm.exact() || f.s.Masks == CIDRMask && !cidr {
			return Match{}, fmt.Errorf("%w: %s mask %s", ErrUnsupported, f, hexText(fm.Mask, n))
		}
		for _, o := range fms {
			if o.Field == f {
				return Match{}, fmt.Errorf("%w: %s twice", ErrMalformed, f)
			}
		}
		fms = append(fms, fm)
	}
	return NewMatch(fms...), nil
}

// decodeInstructions accepts apply_actions then goto_table, each optional.
func (v Vocabulary) decodeInstructions(b []byte) ([]Action, error) {
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
		case typ == instrApplyActions && !applySeen && !gotoSeen:
			as, err := v.DecodeActions(b[8:n])
			if err != nil {
				return nil, err
			}
			actions = append(actions, as...)
			applySeen = true
		case typ == instrGotoTable && !gotoSeen && n == 8:
			actions = append(actions, GotoTable{b[4]})
			gotoSeen = true
		default:
			return nil, fmt.Errorf("%w: instruction type %d (%d bytes) here", ErrUnsupported, typ, n)
		}
		b = b[n:]
	}
	return actions, nil
}

// DecodeActions decodes a list of actions (the body of apply_actions, or
// the actions nested in another action).
func (v Vocabulary) DecodeActions(b []byte) ([]Action, error) {
	var out []Action
	for len(b) > 0 {
		if len(b) < 8 {
			return nil, fmt.Errorf("%w: %d-byte action", ErrMalformed, len(b))
		}
		typ, n := binary.BigEndian.Uint16(b[0:2]), int(binary.BigEndian.Uint16(b[2:4]))
		if n < 8 || n%8 != 0 || n > len(b) {
			return nil, fmt.Errorf("%w: action of %d bytes with %d left", ErrMalformed, n, len(b))
		}
		id := actionID{typ: typ}
		if typ == ActionExperimenter && n >= 16 {
			id = actionID{typ, binary.BigEndian.Uint32(b[4:8]), binary.BigEndian.Uint16(b[8:10])}
		}
		k, ok := v.actions[id]
		if !ok {
			return nil, fmt.Errorf("%w: action type %d of %d bytes", ErrUnsupported, typ, n)
		}
		a, err := k.Decode(b[:n], v)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
		b = b[n:]
	}
	return out, nil
}

func decodeOutput(a []byte, _ Vocabulary) (Action, error) {
	if len(a) != 16 || binary.BigEndian.Uint16(a[8:10]) != 0 {
		return nil, fmt.Errorf("%w: output of %d bytes or with max_len", ErrUnsupported, len(a))
	}
	return Output{Port: binary.BigEndian.Uint32(a[4:8])}, nil
}

func decodeSetField(a []byte, v Vocabulary) (Action, error) {
	h := Header(binary.BigEndian.Uint32(a[4:8]))
	f, ok := v.Field(h)
	if !ok || h.hasMask() || h.length() != f.s.Bytes || 8+f.s.Bytes > len(a) {
		return nil, fmt.Errorf("%w: set_field class 0x%04x field %d len %d", ErrUnsupported, h.class(), h.field(), h.length())
	}
	return SetField{Field: f, Value: valueOf(a[8 : 8+f.s.Bytes])}, nil
}

// Subfield resolves an NXM header plus bit range (as move and load carry
// them) into a Subfield.
func (v Vocabulary) Subfield(h Header, ofs, n int) (Subfield, error) {
	f, ok := v.Field(h)
	if !ok || h.hasMask() || h.length() != f.s.Bytes || n < 1 || ofs+n > f.Bits() {
		return Subfield{}, fmt.Errorf("%w: NXM field class 0x%04x field %d bits %d+%d", ErrUnsupported, h.class(), h.field(), ofs, n)
	}
	return Subfield{Field: f, Ofs: uint8(ofs), Bits: uint8(n)}, nil
}

func decodeMove(a []byte, v Vocabulary) (Action, error) {
	if len(a) != 24 {
		return nil, fmt.Errorf("%w: move of %d bytes", ErrUnsupported, len(a))
	}
	be := binary.BigEndian
	n := int(be.Uint16(a[10:12]))
	src, err := v.Subfield(Header(be.Uint32(a[16:20])), int(be.Uint16(a[12:14])), n)
	if err != nil {
		return nil, err
	}
	dst, err := v.Subfield(Header(be.Uint32(a[20:24])), int(be.Uint16(a[14:16])), n)
	if err != nil {
		return nil, err
	}
	return Move{Src: src, Dst: dst}, nil
}

func decodeLoad(a []byte, v Vocabulary) (Action, error) {
	if len(a) != 24 {
		return nil, fmt.Errorf("%w: load of %d bytes", ErrUnsupported, len(a))
	}
	be := binary.BigEndian
	ofsNbits := be.Uint16(a[10:12])
	dst, err := v.Subfield(Header(be.Uint32(a[12:16])), int(ofsNbits>>6), int(ofsNbits&0x3f)+1)
	if err != nil {
		return nil, err
	}
	return Load{Dst: dst, Value: be.Uint64(a[16:24])}, nil
}
