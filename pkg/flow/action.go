package flow

import (
	"fmt"
	"net"
	"net/netip"
)

// Action is one step of a flow's actions. A flow's Actions run in order; a
// GotoTable, if any, must come last. No actions at all means drop.
type Action interface {
	fmt.Stringer
	isAction()
}

// Reserved OpenFlow 1.3 port numbers usable in Output and Match.InPort.
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

func (Output) isAction() {}

func (a Output) String() string {
	if a.Port >= portMax {
		return portName(a.Port)
	}
	return fmt.Sprintf("output:%d", a.Port)
}

// GotoTable continues processing in a later table. It must be the last action.
type GotoTable struct{ Table uint8 }

func (GotoTable) isAction() {}

func (a GotoTable) String() string { return fmt.Sprintf("goto_table:%d", a.Table) }

// SetField writes a whole field (OpenFlow 1.3 OFPAT_SET_FIELD).
type SetField struct {
	Field Field
	Value uint64 // MACs and IPv4 addresses as big-endian integers
}

func (SetField) isAction() {}

func (a SetField) String() string {
	fi, _ := a.Field.info()
	return fmt.Sprintf("set_field:%s->%s", fi.formatValue(a.Value), a.Field)
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
	fi, _ := s.Field.info()
	switch {
	case s.Ofs == 0 && int(s.Bits) == fi.bytes*8:
		return fi.nxmName + "[]"
	case s.Bits == 1:
		return fmt.Sprintf("%s[%d]", fi.nxmName, s.Ofs)
	}
	return fmt.Sprintf("%s[%d..%d]", fi.nxmName, s.Ofs, int(s.Ofs)+int(s.Bits)-1)
}

func (s Subfield) validate(write bool) error {
	fi, ok := s.Field.info()
	switch {
	case !ok:
		return fmt.Errorf("unknown field %d", s.Field)
	case s.Field == FieldInPort:
		return fmt.Errorf("in_port cannot be moved or loaded")
	case s.Bits == 0 || int(s.Ofs)+int(s.Bits) > fi.bytes*8:
		return fmt.Errorf("%s: bits %d..%d outside the %d-bit field", fi.name, s.Ofs, int(s.Ofs)+int(s.Bits)-1, fi.bytes*8)
	case write && !fi.writable:
		return fmt.Errorf("%s is read-only", fi.name)
	}
	return nil
}

// Load writes Value into a subfield (Nicira NXAST_REG_LOAD). OVS prints it
// as load:VALUE->FIELD[range]; use SetField for whole non-register fields.
type Load struct {
	Dst   Subfield
	Value uint64
}

func (Load) isAction() {}

func (a Load) String() string { return fmt.Sprintf("load:%s->%s", cHex(a.Value), a.Dst) }

// Move copies Src into Dst, which must have the same width (Nicira NXAST_REG_MOVE).
type Move struct{ Src, Dst Subfield }

func (Move) isAction() {}

func (a Move) String() string { return fmt.Sprintf("move:%s->%s", a.Src, a.Dst) }

// invalid is the result of a constructor given a bad value; Validate reports it.
type invalid struct{ err error }

func (invalid) isAction() {}

func (a invalid) String() string { return "<invalid: " + a.err.Error() + ">" }

func setMAC(f Field, mac net.HardwareAddr) Action {
	if len(mac) != 6 {
		return invalid{fmt.Errorf("set %s: %q is not a 6-byte MAC address", f, mac)}
	}
	return SetField{f, macToU64(mac)}
}

func setIPv4(f Field, a netip.Addr) Action {
	if !a.Is4() {
		return invalid{fmt.Errorf("set %s: %s is not an IPv4 address", f, a)}
	}
	return SetField{f, addrToU64(a)}
}

// SetEthSrc sets the Ethernet source address.
func SetEthSrc(mac net.HardwareAddr) Action { return setMAC(FieldEthSrc, mac) }

// SetEthDst sets the Ethernet destination address.
func SetEthDst(mac net.HardwareAddr) Action { return setMAC(FieldEthDst, mac) }

// SetArpSha sets the ARP sender hardware address.
func SetArpSha(mac net.HardwareAddr) Action { return setMAC(FieldArpSha, mac) }

// SetArpTha sets the ARP target hardware address.
func SetArpTha(mac net.HardwareAddr) Action { return setMAC(FieldArpTha, mac) }

// SetArpSpa sets the ARP sender protocol address.
func SetArpSpa(a netip.Addr) Action { return setIPv4(FieldArpSpa, a) }

// SetArpTpa sets the ARP target protocol address.
func SetArpTpa(a netip.Addr) Action { return setIPv4(FieldArpTpa, a) }

// SetTunDst sets the tunnel destination (underlay IPv4 address).
func SetTunDst(a netip.Addr) Action { return setIPv4(FieldTunDst, a) }

// SetArpOp sets the ARP opcode.
func SetArpOp(op uint16) Action { return SetField{FieldArpOp, uint64(op)} }

// SetTunID sets the tunnel key.
func SetTunID(id uint64) Action { return SetField{FieldTunID, id} }

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
func (r RegField) Subfield() Subfield { return Bits(FieldReg0+Field(r.Reg), r.Ofs, r.Bits) }

// String is the NXM notation, e.g. NXM_NX_REG1[0].
func (r RegField) String() string { return r.Subfield().String() }

// LoadReg writes v into register field r: a set_field when r is the whole
// register, a load otherwise (both as OVS prints and returns them).
func LoadReg(r RegField, v uint32) Action {
	if r.Reg > 7 {
		return invalid{fmt.Errorf("no register %d", r.Reg)}
	}
	if r.Ofs == 0 && r.Bits == 32 {
		return SetField{FieldReg0 + Field(r.Reg), uint64(v)}
	}
	return Load{r.Subfield(), uint64(v)}
}

// validateAction checks one action against the flow's match.
func validateAction(a Action, m Match) error {
	switch a := a.(type) {
	case invalid:
		return a.err
	case Output:
		if a.Port == 0 || a.Port >= portMax && portName(a.Port) == fmt.Sprint(a.Port) {
			return fmt.Errorf("output: unsupported port %d", a.Port)
		}
	case SetField:
		fi, ok := a.Field.info()
		if !ok || !fi.writable {
			return fmt.Errorf("set_field: %s is not writable", a.Field)
		}
		if a.Value&^fullMask(fi.bytes) != 0 {
			return fmt.Errorf("set_field: %#x does not fit %s", a.Value, fi.name)
		}
		return prereq(fi, m)
	case Load:
		if err := a.Dst.validate(true); err != nil {
			return fmt.Errorf("load: %w", err)
		}
		if a.Dst.Bits < 64 && a.Value>>a.Dst.Bits != 0 {
			return fmt.Errorf("load: %#x does not fit %d bits", a.Value, a.Dst.Bits)
		}
		fi, _ := a.Dst.Field.info()
		return prereq(fi, m)
	case Move:
		return validateMove(a, m)
	case GotoTable:
	default:
		return fmt.Errorf("unsupported action %T", a)
	}
	return nil
}

func validateMove(a Move, m Match) error {
	if err := a.Src.validate(false); err != nil {
		return fmt.Errorf("move source: %w", err)
	}
	if err := a.Dst.validate(true); err != nil {
		return fmt.Errorf("move destination: %w", err)
	}
	if a.Src.Bits != a.Dst.Bits {
		return fmt.Errorf("move: %d bits into %d bits", a.Src.Bits, a.Dst.Bits)
	}
	for _, s := range []Subfield{a.Src, a.Dst} {
		fi, _ := s.Field.info()
		if err := prereq(fi, m); err != nil {
			return err
		}
	}
	return nil
}

func prereq(fi fieldInfo, m Match) error {
	if fi.prereq != 0 && m.EthType != fi.prereq {
		return fmt.Errorf("%s needs a match on eth_type 0x%04x", fi.name, fi.prereq)
	}
	return nil
}
