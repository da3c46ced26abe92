package flow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/contiv/libOpenflow/openflow13"
)

// Encoding: each Action writes its own bytes (AppendWire), and the
// instructions are written here; libOpenflow's FlowMod carries them as raw
// bytes, and its Match carries raw field values. What libOpenflow would get
// wrong for OVS is thereby avoided:
//   - its typed match values cover few masked fields, and its NXRange mask
//     helper returns the wrong mask for a range ending at bit 0;
//   - NewActionOutput sets max_len 256; OVS stores and returns max_len, and
//     ovs-ofctl sends 0 for ports other than CONTROLLER, so we send 0;
//   - FlowMod.Len leaves instructions out for DELETE* but MarshalBinary still
//     writes them, so a delete carrying instructions has a wrong length:
//     deletes get no instructions;
//   - FlowMod.MarshalBinary writes OutPort into out_group too, harmless only
//     while both stay ANY, which is all we send.

// rawValue is a match value (or mask) as wire bytes.
type rawValue struct{ b []byte }

func (r *rawValue) Len() uint16                    { return uint16(len(r.b)) }
func (r *rawValue) MarshalBinary() ([]byte, error) { return slices.Clone(r.b), nil }
func (r *rawValue) UnmarshalBinary(b []byte) error { r.b = slices.Clone(b); return nil }

// rawInstructions are encoded instructions, as a libOpenflow Instruction.
type rawInstructions struct{ b []byte }

func (r *rawInstructions) Len() uint16                    { return uint16(len(r.b)) }
func (r *rawInstructions) MarshalBinary() ([]byte, error) { return slices.Clone(r.b), nil }
func (r *rawInstructions) UnmarshalBinary(b []byte) error { r.b = slices.Clone(b); return nil }
func (r *rawInstructions) AddAction(openflow13.Action, bool) error {
	return errors.New("encoded instructions are final")
}

// libField is the match field as a libOpenflow match field: exact fields
// carry no mask, as OVS returns them.
func (fm FieldMatch) libField() openflow13.MatchField {
	n, h := fm.Field.s.Bytes, fm.Field.wire()
	mf := openflow13.MatchField{Class: h.class(), Field: h.field(), Length: uint8(n),
		Value: &rawValue{slices.Clone(fm.Value.bytes(n))}}
	if !fm.exact() {
		mf.HasMask = true
		mf.Mask = &rawValue{slices.Clone(fm.Mask.bytes(n))}
		mf.Length = uint8(2 * n)
	}
	return mf
}

func libMatch(m Match) openflow13.Match {
	lm := *openflow13.NewMatch()
	lm.Fields = make([]openflow13.MatchField, 0, len(m.fs)) // one allocation, not one per growth
	for _, fm := range m.fs {
		if fm.err == nil {
			lm.AddField(fm.libField())
		}
	}
	return lm
}

// OpenFlow 1.3 instruction types.
const (
	instrGotoTable    uint16 = 1
	instrApplyActions uint16 = 4
)

// encodeInstructions is apply_actions (if any actions) then goto_table (if
// any), the order in which OVS returns them.
func encodeInstructions(actions []Action) ([]byte, error) {
	return appendInstructions(make([]byte, 0, 8+24*len(actions)+8), actions)
}

// appendInstructions appends the instructions of actions to dst.
func appendInstructions(dst []byte, actions []Action) ([]byte, error) {
	start := len(dst)
	b := append(dst, 0, 0, 0, 0, 0, 0, 0, 0) // the apply_actions header, written below
	var gotoTable *GotoTable
	for _, a := range actions {
		if g, ok := a.(GotoTable); ok {
			gotoTable = &g
			continue
		}
		var err error
		if b, err = a.AppendWire(b); err != nil {
			return nil, err
		}
	}
	if len(b) == start+8 {
		b = b[:start]
	} else {
		binary.BigEndian.PutUint16(b[start:start+2], instrApplyActions)
		binary.BigEndian.PutUint16(b[start+2:start+4], uint16(len(b)-start))
	}
	if gotoTable != nil {
		b = binary.BigEndian.AppendUint16(b, instrGotoTable)
		b = binary.BigEndian.AppendUint16(b, 8)
		b = append(b, gotoTable.Table, 0, 0, 0)
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
	return f.flowMod(cmd, nil)
}

// AddFlowMod is FlowMod(FC_ADD) for a flow that passed Validate, given its
// Content as computed for it (Content): neither is done again. A bulk
// install builds, validates and hashes each flow once, then sends it.
func (f Flow) AddFlowMod(c Content) (*openflow13.FlowMod, error) {
	if len(c) < 8 {
		return nil, fmt.Errorf("flow %q: content of %d bytes: no cookie", f.String(), len(c))
	}
	return f.flowMod(openflow13.FC_ADD, []byte(c[8:]))
}

// flowMod builds the flow_mod of f; instr, if not nil, is its encoded
// instructions.
func (f Flow) flowMod(cmd uint8, instr []byte) (*openflow13.FlowMod, error) {
	fm := openflow13.NewFlowMod()
	fm.Command = cmd
	fm.TableId = f.Table
	fm.Priority = f.Priority
	fm.Cookie = f.Cookie
	fm.Match = libMatch(f.Match)
	if cmd != openflow13.FC_DELETE_STRICT {
		if instr == nil {
			var err error
			if instr, err = encodeInstructions(f.Actions); err != nil {
				return nil, fmt.Errorf("flow %q: %w", f.String(), err)
			}
		}
		if len(instr) > 0 {
			fm.Instructions = []openflow13.Instruction{&rawInstructions{instr}}
		}
	}
	return fm, nil
}
