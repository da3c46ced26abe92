package flow

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/contiv/libOpenflow/openflow13"
)

// Encoding goes through libOpenflow's message types (FlowMod, Match,
// MatchField, instructions, OFPAT_OUTPUT/SET_FIELD, NXAST_REG_LOAD/MOVE),
// avoiding the parts that are wrong for OVS:
//   - match and set_field values are raw bytes (rawValue): libOpenflow's
//     typed values cover few masked fields, and its NXRange mask helper
//     returns the wrong mask for a range ending at bit 0;
//   - NewActionOutput sets max_len 256; OVS stores and returns max_len, and
//     ovs-ofctl sends 0 for ports other than CONTROLLER, so we send 0;
//   - FlowMod.Len leaves instructions out for DELETE* but MarshalBinary still
//     writes them, so a delete carrying instructions has a wrong length:
//     deletes get no instructions;
//   - FlowMod.MarshalBinary writes OutPort into out_group too, harmless only
//     while both stay ANY, which is all we send.

// rawValue is a match or set_field value (or mask) as wire bytes.
type rawValue struct{ b []byte }

func (r *rawValue) Len() uint16                    { return uint16(len(r.b)) }
func (r *rawValue) MarshalBinary() ([]byte, error) { return slices.Clone(r.b), nil }
func (r *rawValue) UnmarshalBinary(b []byte) error { r.b = slices.Clone(b); return nil }

func newRaw(v uint64, n int) *rawValue {
	r := &rawValue{make([]byte, n)}
	putValue(r.b, v, n)
	return r
}

// headerField is a libOpenflow MatchField carrying only a header, as move
// and load operands.
func headerField(h header) *openflow13.MatchField {
	return &openflow13.MatchField{Class: h.class(), Field: h.field(), Length: uint8(h.length())}
}

// libField is the entry as a libOpenflow match field: exact fields carry no
// mask, as OVS returns them.
func (e entry) libField() openflow13.MatchField {
	fi, _ := e.field.info()
	n := fi.bytes
	mf := *headerField(fi.wire())
	mf.Value = newRaw(e.value, n)
	if e.mask != fullMask(n) {
		mf.HasMask = true
		mf.Mask = newRaw(e.mask, n)
		mf.Length = uint8(2 * n)
	}
	return mf
}

// tlv is the entry as an OXM/NXM TLV: the bytes libField marshals to,
// written directly (flow keys are computed for every desired flow, and
// going through libOpenflow's types allocated several objects per field).
func (e entry) tlv() []byte {
	fi, _ := e.field.info()
	n := fi.bytes
	h, size := fi.wire().id(), n
	if e.mask != fullMask(n) {
		h, size = h|hasMaskBit, 2*n
	}
	b := make([]byte, 4+size)
	binary.BigEndian.PutUint32(b, h|uint32(size))
	putValue(b[4:], e.value, n)
	if size > n {
		putValue(b[4+n:], e.mask, n)
	}
	return b
}

// encodeMatchTLVs is the match as OXM/NXM TLVs, in OVS's order.
func encodeMatchTLVs(m Match) [][]byte {
	es := m.entries()
	out := make([][]byte, len(es))
	for i, e := range es {
		out[i] = e.tlv()
	}
	return out
}

// canonicalMatch sorts TLVs and joins them: the same set of fields gives the
// same string whatever order the switch or we put them in.
func canonicalMatch(tlvs [][]byte) string {
	s := slices.Clone(tlvs)
	slices.SortFunc(s, bytes.Compare)
	var b strings.Builder
	for _, t := range s {
		b.Write(t)
	}
	return b.String()
}

func libMatch(m Match) openflow13.Match {
	lm := *openflow13.NewMatch()
	for _, e := range m.entries() {
		lm.AddField(e.libField())
	}
	return lm
}

// libAction converts one action (not GotoTable) to libOpenflow.
func libAction(a Action) (openflow13.Action, error) {
	switch a := a.(type) {
	case Output:
		out := openflow13.NewActionOutput(a.Port)
		out.MaxLen = 0
		return out, nil
	case SetField:
		fi, ok := a.Field.info()
		if !ok {
			return nil, fmt.Errorf("set_field: unknown field %d", a.Field)
		}
		mf := headerField(fi.wire())
		mf.Value = newRaw(a.Value, fi.bytes)
		return openflow13.NewActionSetField(*mf), nil
	case Load:
		fi, ok := a.Dst.Field.info()
		if !ok || a.Dst.Bits == 0 {
			return nil, fmt.Errorf("load: bad destination %v", a.Dst)
		}
		ofsNbits := uint16(a.Dst.Ofs)<<6 | uint16(a.Dst.Bits-1)
		return openflow13.NewNXActionRegLoad(ofsNbits, headerField(fi.nxm), a.Value), nil
	case Move:
		src, ok1 := a.Src.Field.info()
		dst, ok2 := a.Dst.Field.info()
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("move: unknown field")
		}
		return openflow13.NewNXActionRegMove(uint16(a.Src.Bits), uint16(a.Src.Ofs), uint16(a.Dst.Ofs),
			headerField(src.nxm), headerField(dst.nxm)), nil
	case invalid:
		return nil, a.err
	}
	return nil, fmt.Errorf("unsupported action %T", a)
}

// libInstructions is apply_actions (if any) then goto_table (if any), the
// order in which OVS returns them.
func libInstructions(actions []Action) ([]openflow13.Instruction, error) {
	var out []openflow13.Instruction
	apply := openflow13.NewInstrApplyActions()
	var gotoTable *openflow13.InstrGotoTable
	for _, a := range actions {
		if g, ok := a.(GotoTable); ok {
			gotoTable = openflow13.NewInstrGotoTable(g.Table)
			continue
		}
		la, err := libAction(a)
		if err != nil {
			return nil, err
		}
		if err := apply.AddAction(la, false); err != nil {
			return nil, err
		}
	}
	if len(apply.Actions) > 0 {
		out = append(out, apply)
	}
	if gotoTable != nil {
		out = append(out, gotoTable)
	}
	return out, nil
}

func encodeInstructions(actions []Action) ([]byte, error) {
	instrs, err := libInstructions(actions)
	if err != nil {
		return nil, err
	}
	var b []byte
	for _, in := range instrs {
		data, err := in.MarshalBinary()
		if err != nil {
			return nil, err
		}
		b = append(b, data...)
	}
	return b, nil
}

// FlowMod encodes the flow as an OpenFlow 1.3 flow_mod. cmd is
// openflow13.FC_ADD, FC_MODIFY_STRICT or FC_DELETE_STRICT. Deletes match
// table, priority and match exactly and ignore the cookie; note that OpenFlow
// 1.3 MODIFY_STRICT changes instructions but never the cookie: use ADD,
// which replaces a flow with the same key, to change a cookie.
func (f Flow) FlowMod(cmd uint8) (*openflow13.FlowMod, error) {
	switch cmd {
	case openflow13.FC_ADD, openflow13.FC_MODIFY_STRICT:
		if err := f.Validate(); err != nil {
			return nil, err
		}
	case openflow13.FC_DELETE_STRICT:
		if err := f.Match.Validate(); err != nil {
			return nil, fmt.Errorf("flow %q: %w", f.String(), err)
		}
	default:
		return nil, fmt.Errorf("unsupported flow_mod command %d", cmd)
	}
	fm := openflow13.NewFlowMod()
	fm.Command = cmd
	fm.TableId = f.Table
	fm.Priority = f.Priority
	fm.Cookie = f.Cookie
	fm.Match = libMatch(f.Match)
	if cmd != openflow13.FC_DELETE_STRICT {
		instrs, err := libInstructions(f.Actions)
		if err != nil {
			return nil, fmt.Errorf("flow %q: %w", f.String(), err)
		}
		fm.Instructions = instrs
	}
	return fm, nil
}
