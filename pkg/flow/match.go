package flow

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Masked32 is a 32-bit value under a mask; a zero mask matches anything.
type Masked32 struct{ Value, Mask uint32 }

// Masked64 is a 64-bit value under a mask; a zero mask matches anything.
type Masked64 struct{ Value, Mask uint64 }

// Match is what a flow matches. Zero values match anything. IPv4 prefixes
// match the masked network (a /32 is exact); a nil MAC mask means exact.
// Fields of an upper layer need EthType set to that layer (OVS rejects a
// flow without the prerequisite): IPv4Src/IPv4Dst need EthTypeIPv4, the Arp*
// fields EthTypeARP.
type Match struct {
	InPort     uint32 // OpenFlow port number; 0 matches any port
	EthSrc     net.HardwareAddr
	EthSrcMask net.HardwareAddr
	EthDst     net.HardwareAddr
	EthDstMask net.HardwareAddr
	EthType    uint16 // EthTypeIPv4 prints as "ip", EthTypeARP as "arp", EthTypeIPv6 as "ipv6"
	IPv4Src    netip.Prefix
	IPv4Dst    netip.Prefix
	ArpOp      uint16
	ArpSpa     netip.Prefix
	ArpTpa     netip.Prefix
	ArpSha     net.HardwareAddr
	ArpTha     net.HardwareAddr
	TunID      Masked64
	TunSrc     netip.Prefix
	TunDst     netip.Prefix
	Regs       [8]Masked32
}

// Host is the /32 prefix of an IPv4 address, for exact address matches.
func Host(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, 32) }

// WithReg returns m also matching register field r equal to v.
func (m Match) WithReg(r RegField, v uint32) Match {
	mask := r.Mask()
	reg := &m.Regs[r.Reg%8]
	reg.Value = reg.Value&^mask | v<<r.Ofs&mask
	reg.Mask |= mask
	return m
}

// entry is one matched field with value and mask normalised: value&mask,
// mask non-zero; an all-ones mask means exact.
type entry struct {
	field       Field
	value, mask uint64
}

// entries lists the matched fields in the order OVS encodes them in
// OpenFlow 1.3. Invalid values (wrong MAC length, IPv6 prefix) are skipped:
// Validate reports them.
func (m Match) entries() []entry {
	var es []entry
	add := func(f Field, v, mask uint64) {
		if mask != 0 {
			es = append(es, entry{f, v & mask, mask})
		}
	}
	if m.InPort != 0 {
		add(FieldInPort, uint64(m.InPort), fullMask(4))
	}
	addMAC(add, FieldEthDst, m.EthDst, m.EthDstMask)
	addMAC(add, FieldEthSrc, m.EthSrc, m.EthSrcMask)
	if m.EthType != 0 {
		add(FieldEthType, uint64(m.EthType), fullMask(2))
	}
	addPrefix(add, FieldIPv4Src, m.IPv4Src)
	addPrefix(add, FieldIPv4Dst, m.IPv4Dst)
	if m.ArpOp != 0 {
		add(FieldArpOp, uint64(m.ArpOp), fullMask(2))
	}
	addPrefix(add, FieldArpSpa, m.ArpSpa)
	addPrefix(add, FieldArpTpa, m.ArpTpa)
	addMAC(add, FieldArpSha, m.ArpSha, nil)
	addMAC(add, FieldArpTha, m.ArpTha, nil)
	add(FieldTunID, m.TunID.Value, m.TunID.Mask)
	addPrefix(add, FieldTunSrc, m.TunSrc)
	addPrefix(add, FieldTunDst, m.TunDst)
	for i, r := range m.Regs {
		add(FieldReg0+Field(i), uint64(r.Value), uint64(r.Mask))
	}
	return es
}

func addMAC(add func(Field, uint64, uint64), f Field, mac, mask net.HardwareAddr) {
	if len(mac) != 6 {
		return
	}
	mk := fullMask(6)
	if mask != nil {
		if len(mask) != 6 {
			return
		}
		mk = macToU64(mask)
	}
	add(f, macToU64(mac), mk)
}

func addPrefix(add func(Field, uint64, uint64), f Field, p netip.Prefix) {
	if !p.IsValid() || !p.Addr().Is4() || p.Bits() == 0 {
		return
	}
	add(f, addrToU64(p.Addr()), fullMask(4)&^(1<<(32-p.Bits())-1))
}

// Validate reports malformed values and missing prerequisites.
func (m Match) Validate() error {
	var errs []error
	for _, c := range []struct {
		name      string
		mac, mask net.HardwareAddr
	}{{"dl_src", m.EthSrc, m.EthSrcMask}, {"dl_dst", m.EthDst, m.EthDstMask}, {"arp_sha", m.ArpSha, nil}, {"arp_tha", m.ArpTha, nil}} {
		if c.mac != nil && len(c.mac) != 6 || c.mask != nil && len(c.mask) != 6 {
			errs = append(errs, fmt.Errorf("%s: not a 6-byte MAC address", c.name))
		}
		if c.mac == nil && c.mask != nil {
			errs = append(errs, fmt.Errorf("%s: mask without a value", c.name))
		}
	}
	for _, c := range []struct {
		name string
		p    netip.Prefix
	}{{"nw_src", m.IPv4Src}, {"nw_dst", m.IPv4Dst}, {"arp_spa", m.ArpSpa}, {"arp_tpa", m.ArpTpa}, {"tun_src", m.TunSrc}, {"tun_dst", m.TunDst}} {
		if c.p.IsValid() && !c.p.Addr().Is4() {
			errs = append(errs, fmt.Errorf("%s: %s is not an IPv4 prefix", c.name, c.p))
		}
	}
	for _, e := range m.entries() {
		fi, _ := e.field.info()
		if fi.prereq != 0 && m.EthType != fi.prereq {
			errs = append(errs, fmt.Errorf("%s needs eth_type 0x%04x", fi.name, fi.prereq))
		}
	}
	return errors.Join(errs...)
}

// String formats the match as ovs-ofctl prints it, without priority.
func (m Match) String() string {
	var parts []string
	shorthand := ethTypeShorthand(m.EthType)
	if shorthand != "" {
		parts = append(parts, shorthand)
	}
	for i, r := range m.Regs {
		if r.Mask != 0 {
			parts = append(parts, fmt.Sprintf("reg%d=%s", i, maskedHex(uint64(r.Value&r.Mask), uint64(r.Mask), fullMask(4))))
		}
	}
	if m.TunID.Mask != 0 {
		parts = append(parts, "tun_id="+maskedHex(m.TunID.Value&m.TunID.Mask, m.TunID.Mask, fullMask(8)))
	}
	parts = appendPrefix(parts, "tun_src", m.TunSrc)
	parts = appendPrefix(parts, "tun_dst", m.TunDst)
	if m.InPort != 0 {
		parts = append(parts, "in_port="+portName(m.InPort))
	}
	parts = appendMAC(parts, "dl_src", m.EthSrc, m.EthSrcMask)
	parts = appendMAC(parts, "dl_dst", m.EthDst, m.EthDstMask)
	if m.EthType != 0 && shorthand == "" {
		parts = append(parts, fmt.Sprintf("dl_type=0x%04x", m.EthType))
	}
	switch m.EthType {
	case EthTypeARP:
		parts = appendPrefix(parts, "arp_spa", m.ArpSpa)
		parts = appendPrefix(parts, "arp_tpa", m.ArpTpa)
	case EthTypeIPv6:
	default:
		parts = appendPrefix(parts, "nw_src", m.IPv4Src)
		parts = appendPrefix(parts, "nw_dst", m.IPv4Dst)
	}
	if m.ArpOp != 0 {
		parts = append(parts, fmt.Sprintf("arp_op=%d", m.ArpOp))
	}
	parts = appendMAC(parts, "arp_sha", m.ArpSha, nil)
	parts = appendMAC(parts, "arp_tha", m.ArpTha, nil)
	return strings.Join(parts, ",")
}

func ethTypeShorthand(t uint16) string {
	switch t {
	case EthTypeIPv4:
		return "ip"
	case EthTypeARP:
		return "arp"
	case EthTypeIPv6:
		return "ipv6"
	}
	return ""
}

func maskedHex(v, mask, full uint64) string {
	if mask == full {
		return cHex(v)
	}
	return cHex(v) + "/" + cHex(mask)
}

func appendPrefix(parts []string, name string, p netip.Prefix) []string {
	if !p.IsValid() || p.Bits() == 0 {
		return parts
	}
	if p.Bits() == p.Addr().BitLen() {
		return append(parts, name+"="+p.Addr().String())
	}
	return append(parts, name+"="+p.Masked().String())
}

func appendMAC(parts []string, name string, mac, mask net.HardwareAddr) []string {
	if len(mac) != 6 {
		return parts
	}
	if mask == nil || macToU64(mask) == fullMask(6) {
		return append(parts, name+"="+mac.String())
	}
	if macToU64(mask) == 0 {
		return parts
	}
	return append(parts, name+"="+u64ToMAC(macToU64(mac)&macToU64(mask)).String()+"/"+mask.String())
}
