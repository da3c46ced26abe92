package flow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Action is one step of a flow's actions. A flow's Actions run in order; a
// GotoTable, if any, must come last. No actions at all means drop.
//
// An action type is declared once: its fields, its ovs-ofctl text (String),
// its OpenFlow 1.3 encoding (AppendWire) and its checks against the flow's
// match (Check); an ActionKind in a Vocabulary decodes it from flow stats.
type Action interface {
	fmt.Stringer
	// AppendWire appends the action as OpenFlow 1.3 sends it inside
	// apply_actions (a multiple of 8 bytes).
	AppendWire(b []byte) ([]byte, error)
	// Check reports what OVS would reject about the action in a flow
	// matching m.
	Check(m Match) error
}

// ActionKind declares how one kind of action is decoded from the bytes of
// an apply_actions instruction: the OpenFlow action type, for experimenter
// actions (type 0xffff) the experimenter ID and subtype, and the decoder.
type ActionKind struct {
	Name         string
	Type         uint16
	Experimenter uint32 // with Type ActionExperimenter: e.g. NiciraExperimenter
	Subtype      uint16 // with Type ActionExperimenter: e.g. NXAST_REG_LOAD
	// Decode turns one action's bytes (header included, length checked to
	// be a multiple of 8) back into the Action; v decodes nested actions
	// and fields.
	Decode func(b []byte, v Vocabulary) (Action, error)
}

// OpenFlow 1.3 action types and the Nicira extension.
const (
	ActionOutput       uint16 = 0
	ActionSetField     uint16 = 25
	ActionExperimenter uint16 = 0xffff
	NiciraExperimenter uint32 = 0x00002320
	nxastRegMove       uint16 = 6
	nxastRegLoad       uint16 = 7
)

// AppendNicira appends the 10-byte header of a Nicira extension action of
// length n (a multiple of 8) and subtype; the body follows.
func AppendNicira(b []byte, n int, subtype uint16) []byte {
	b = binary.BigEndian.AppendUint16(b, ActionExperimenter)
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	b = binary.BigEndian.AppendUint32(b, NiciraExperimenter)
	return binary.BigEndian.AppendUint16(b, subtype)
}

// Pad8 appends zeros to b until its length from start is a multiple of 8.
func Pad8(b []byte, start int) []byte {
	for (len(b)-start)%8 != 0 {
		b = append(b, 0)
	}
	return b
}

// Reserved OpenFlow 1.3 port numbers usable in Output and in_port.
const (
	PortInPort uint32 = 0xfffffff8 // output: send back out of the input port
	PortTable  uint32 = 0xfffffff9
	PortNormal uint32 = 0xfffffffa
	PortFlood  uint32 = 0xfffffffb
	PortAll    uint32 = 0xfffffffc
	PortLocal  uint32 = 0xfffffffe
	portMax    uint32 = 0xffffff00 // first reserved number
)

// portName formats a port number as ovs-ofctl prints it (numbers, never
// interface names: that is ovs-ofctl's --no-names, its default when the
// output is not a terminal).
func portName(p uint32) string {
	switch p {
	case PortInPort:
		return "IN_PORT"
	case PortTable:
		return "TABLE"
	case PortNormal:
		return "NORMAL"
	case PortFlood:
		return "FLOOD"
	case PortAll:
		return "ALL"
	case PortLocal:
		return "LOCAL"
	}
	return fmt.Sprint(p)
}

// Output sends the packet out of Port (a port number or a reserved port).
type Output struct{ Port uint32 }

func (a Output) String() string {
	if a.Port >= portMax {
		return portName(a.Port)
	}
	return fmt.Sprintf("output:%d", a.Port)
}

// AppendWire writes OFPAT_OUTPUT with max_len 0, as ovs-ofctl sends it
// for ports other than CONTROLLER (OVS returns the max_len it was given).
func (a Output) AppendWire(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint16(b, ActionOutput)
	b = binary.BigEndian.AppendUint16(b, 16)
	b = binary.BigEndian.AppendUint32(b, a.Port)
	return append(b, 0, 0, 0, 0, 0, 0, 0, 0), nil // max_len, pad
}

func (a Output) Check(Match) error {
	if a.Port == 0 || a.Port >= portMax && portName(a.Port) == fmt.Sprint(a.Port) {
		return fmt.Errorf("output: unsupported port %d", a.Port)
	}
	return nil
}

// GotoTable continues processing in a later table. It must be the last
// action: it is an instruction of its own on the wire.
type GotoTable struct{ Table uint8 }

func (a GotoTable) String() string { return fmt.Sprintf("goto_table:%d", a.Table) }

func (GotoTable) AppendWire(b []byte) ([]byte, error) {
	return b, errors.New("goto_table is an instruction, not an action")
}

func (GotoTable) Check(Match) error { return nil }

// SetField writes a whole field (OpenFlow 1.3 OFPAT_SET_FIELD).
type SetField struct {
	Field Field
	Value Value
}

// Set writes v into the whole field.
func (f Field) Set(v uint64) Action { return SetField{f, U64(v)} }

// SetMAC writes a MAC address into the field.
func (f Field) SetMAC(mac net.HardwareAddr) Action {
	v, ok := MACValue(mac)
	if !ok {
		return invalid{fmt.Errorf("set %s: %q is not a 6-byte MAC address", f, mac)}
	}
	return SetField{f, v}
}

// SetAddr writes an IP address into the field (IPv4 into a 4-byte field,
// IPv6 into a 16-byte one).
func (f Field) SetAddr(a netip.Addr) Action {
	if !a.IsValid() || a.BitLen() != f.Bits() {
		return invalid{fmt.Errorf("set %s: %s is not an IPv%d address", f, a, map[bool]int{true: 4, false: 6}[f.Bits() == 32])}
	}
	return SetField{f, AddrValue(a)}
}

func (a SetField) String() string {
	s := a.Field.s
	return "set_field:" + s.Format.Text(a.Value, ones(s.Bytes), s.Bytes) + "->" + s.Name
}

func (a SetField) AppendWire(b []byte) ([]byte, error) {
	if a.Field.IsZero() {
		return b, errors.New("set_field: no field")
	}
	start, n := len(b), a.Field.s.Bytes
	b = binary.BigEndian.AppendUint16(b, ActionSetField)
	b = binary.BigEndian.AppendUint16(b, uint16((4+4+n+7)/8*8))
	b = binary.BigEndian.AppendUint32(b, a.Field.wire().id()|uint32(n))
	b = append(b, a.Value.bytes(n)...)
	return Pad8(b, start), nil
}

func (a SetField) Check(m Match) error {
	if a.Field.IsZero() || !a.Field.s.Writable {
		return fmt.Errorf("set_field: %s is not writable", a.Field)
	}
	if !a.Value.fits(a.Field.s.Bytes) {
		return fmt.Errorf("set_field: %s does not fit %s", hexText(a.Value, valueBytes), a.Field)
	}
	return prereq(a.Field, m, "needs a match on eth_type")
}

// Subfield is a bit range of a field: bits Ofs..Ofs+Bits-1, counted from the
// least significant bit.
type Subfield struct {
	Field Field
	Ofs   uint8
	Bits  uint8
}

// Whole is the subfield covering all of f.
func Whole(f Field) Subfield { return Subfield{Field: f, Bits: uint8(f.Bits())} }

// Bits is the subfield of n bits of f starting at bit ofs.
func Bits(f Field, ofs, n uint8) Subfield { return Subfield{Field: f, Ofs: ofs, Bits: n} }

// String formats the subfield as ovs-ofctl does: NXM_OF_ETH_SRC[],
// NXM_NX_REG1[0], NXM_OF_ETH_SRC[0..31].
func (s Subfield) String() string {
	name := s.Field.s.NXMName
	switch {
	case s.Ofs == 0 && int(s.Bits) == s.Field.Bits():
		return name + "[]"
	case s.Bits == 1:
		return fmt.Sprintf("%s[%d]", name, s.Ofs)
	}
	return fmt.Sprintf("%s[%d..%d]", name, s.Ofs, int(s.Ofs)+int(s.Bits)-1)
}

func (s Subfield) validate(write bool, m Match) error {
	switch {
	case s.Field.IsZero():
		return errors.New("no field")
	case s.Field.s.NXM == 0 || s.Field == FieldInPort:
		return fmt.Errorf("%s cannot be moved or loaded", s.Field)
	case s.Bits == 0 || int(s.Ofs)+int(s.Bits) > s.Field.Bits():
		return fmt.Errorf("%s: bits %d..%d outside the %d-bit field", s.Field, s.Ofs, int(s.Ofs)+int(s.Bits)-1, s.Field.Bits())
	case write && !s.Field.s.Writable:
		return fmt.Errorf("%s is read-only", s.Field)
	}
	return prereq(s.Field, m, "needs a match on eth_type")
}

// Load writes Value into a subfield of at most 64 bits (Nicira
// NXAST_REG_LOAD). OVS prints it as load:VALUE->FIELD[range]; use SetField
// for whole non-register fields.
type Load struct {
	Dst   Subfield
	Value uint64
}

func (a Load) String() string { return fmt.Sprintf("load:%s->%s", cHex(a.Value), a.Dst) }

func (a Load) AppendWire(b []byte) ([]byte, error) {
	if a.Dst.Field.IsZero() || a.Dst.Bits == 0 {
		return b, fmt.Errorf("load: bad destination")
	}
	b = AppendNicira(b, 24, nxastRegLoad)
	b = binary.BigEndian.AppendUint16(b, uint16(a.Dst.Ofs)<<6|uint16(a.Dst.Bits-1))
	b = binary.BigEndian.AppendUint32(b, uint32(a.Dst.Field.s.NXM))
	return binary.BigEndian.AppendUint64(b, a.Value), nil
}

func (a Load) Check(m Match) error {
	if err := a.Dst.validate(true, m); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	if a.Dst.Bits > 64 || a.Dst.Bits < 64 && a.Value>>a.Dst.Bits != 0 {
		return fmt.Errorf("load: %#x does not fit %d bits", a.Value, a.Dst.Bits)
	}
	return nil
}

// Move copies Src into Dst, which must have the same width (Nicira NXAST_REG_MOVE).
type Move struct{ Src, Dst Subfield }

func (a Move) String() string { return fmt.Sprintf("move:%s->%s", a.Src, a.Dst) }

func (a Move) AppendWire(b []byte) ([]byte, error) {
	if a.Src.Field.IsZero() || a.Dst.Field.IsZero() {
		return b, fmt.Errorf("move: no field")
	}
	b = AppendNicira(b, 24, nxastRegMove)
	b = binary.BigEndian.AppendUint16(b, uint16(a.Src.Bits))
	b = binary.BigEndian.AppendUint16(b, uint16(a.Src.Ofs))
	b = binary.BigEndian.AppendUint16(b, uint16(a.Dst.Ofs))
	b = binary.BigEndian.AppendUint32(b, uint32(a.Src.Field.s.NXM))
	return binary.BigEndian.AppendUint32(b, uint32(a.Dst.Field.s.NXM)), nil
}

func (a Move) Check(m Match) error {
	if err := a.Src.validate(false, m); err != nil {
		return fmt.Errorf("move source: %w", err)
	}
	if err := a.Dst.validate(true, m); err != nil {
		return fmt.Errorf("move destination: %w", err)
	}
	if a.Src.Bits != a.Dst.Bits {
		return fmt.Errorf("move: %d bits into %d bits", a.Src.Bits, a.Dst.Bits)
	}
	return nil
}

// invalid is the result of a constructor given a bad value; Check reports it.
type invalid struct{ err error }

func (a invalid) String() string                      { return "<invalid: " + a.err.Error() + ">" }
func (a invalid) AppendWire(b []byte) ([]byte, error) { return b, a.err }
func (a invalid) Check(Match) error                   { return a.err }

// RegField is a named bit range of a register: bits Ofs..Ofs+Bits-1 of
// reg<Reg>.
type RegField struct {
	Reg  uint8 // 0..7
	Ofs  uint8
	Bits uint8
}

// Mask is the field's bits within the 32-bit register.
func (r RegField) Mask() uint32 {
	if r.Bits >= 32 {
		return ^uint32(0) << r.Ofs
	}
	return (1<<r.Bits - 1) << r.Ofs
}

// Subfield is the register bits as a move/load operand.
func (r RegField) Subfield() Subfield { return Bits(Reg(int(r.Reg)), r.Ofs, r.Bits) }

// String is the NXM notation, e.g. NXM_NX_REG1[0].
func (r RegField) String() string { return r.Subfield().String() }

// Is matches the register field equal to v.
func (r RegField) Is(v uint32) FieldMatch {
	f := Reg(int(r.Reg))
	if f.IsZero() {
		return FieldMatch{err: fmt.Errorf("no register %d", r.Reg)}
	}
	return f.Masked(uint64(v<<r.Ofs&r.Mask()), uint64(r.Mask()))
}

// Load writes v into the register field: a set_field when r is the whole
// register, a load otherwise (both as OVS prints and returns them).
func (r RegField) Load(v uint32) Action {
	f := Reg(int(r.Reg))
	if f.IsZero() {
		return invalid{fmt.Errorf("no register %d", r.Reg)}
	}
	if r.Ofs == 0 && r.Bits == 32 {
		return f.Set(uint64(v))
	}
	return Load{r.Subfield(), uint64(v)}
}

// Mark names the value v of the register field.
func (r RegField) Mark(v uint32) RegMark { return RegMark{Field: r, Value: v} }

// RegMark is a named constant value of a register field (a mark), declared
// next to its field: a flow sets it with Load and later flows match it with
// Match. Data values (a VNI, an address) are loaded with RegField.Load.
type RegMark struct {
	Field RegField
	Value uint32
}

// Match matches packets carrying the mark.
func (m RegMark) Match() FieldMatch { return m.Field.Is(m.Value) }

// Load sets the mark.
func (m RegMark) Load() Action { return m.Field.Load(m.Value) }
