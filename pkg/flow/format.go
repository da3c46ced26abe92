package flow

import (
	"encoding/hex"
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"strings"
)

// Format prints a field's values the way ovs-ofctl prints them.
type Format interface {
	// Text is value v (already masked) under mask for an n-byte field;
	// mask is all ones over n bytes for an exact value (a match without
	// mask, or a set_field).
	Text(v, mask Value, n int) string
}

// Shorthand is implemented by a Format whose values ovs-ofctl may print as
// a bare word in a match ("ip" for eth_type 0x0800): such a word is printed
// at ShorthandPrintOrder instead of "name=value" at the field's PrintOrder.
type Shorthand interface {
	Shorthand(v Value) string
}

// ShorthandPrintOrder is where a shorthand word goes in a match's text:
// after the connection-tracking fields, before the registers.
const ShorthandPrintOrder = 20

// Formats of the standard fields. FlagsFormat is for bit fields.
var (
	DecimalFormat Format = decimalFormat{}
	HexFormat     Format = hexFormat{}
	MACFormat     Format = macFormat{}
	AddrFormat    Format = addrFormat{} // IPv4 (4 bytes) or IPv6 (16 bytes) address, CIDR masks as prefixes
)

type decimalFormat struct{}

func (decimalFormat) Text(v, mask Value, n int) string {
	if mask == ones(n) {
		return fmt.Sprint(v.U64())
	}
	return hexFormat{}.Text(v, mask, n)
}

type hexFormat struct{}

func (hexFormat) Text(v, mask Value, n int) string {
	if mask == ones(n) {
		return hexText(v, n)
	}
	return hexText(v, n) + "/" + hexText(mask, n)
}

// hexText formats like C's "%#x": "0" for zero, "0x..." otherwise.
func hexText(v Value, n int) string {
	if n <= 8 {
		return cHex(v.U64())
	}
	s := strings.TrimLeft(hex.EncodeToString(v.bytes(n)), "0")
	if s == "" {
		return "0"
	}
	return "0x" + s
}

// cHex formats like C's "%#x": "0" for zero, "0x..." otherwise.
func cHex(v uint64) string {
	if v == 0 {
		return "0"
	}
	return fmt.Sprintf("%#x", v)
}

type macFormat struct{}

func (macFormat) Text(v, mask Value, n int) string {
	s := net.HardwareAddr(v.bytes(6)).String()
	if mask == ones(n) {
		return s
	}
	return s + "/" + net.HardwareAddr(mask.bytes(6)).String()
}

type addrFormat struct{}

func (addrFormat) Text(v, mask Value, n int) string {
	a := valueAddr(v, n)
	if mask == ones(n) {
		return a.String()
	}
	if l, ok := prefixLen(mask, n); ok {
		return netip.PrefixFrom(a, l).String()
	}
	return a.String() + "/" + valueAddr(mask, n).String()
}

// valueAddr is v as an IPv4 (n 4) or IPv6 address.
func valueAddr(v Value, n int) netip.Addr {
	if n == 4 {
		return netip.AddrFrom4([4]byte(v.bytes(4)))
	}
	return netip.AddrFrom16(v)
}

// prefixLen is the length of a CIDR mask of an n-byte field; ok is false
// for a mask that is not leading ones.
func prefixLen(mask Value, n int) (int, bool) {
	l, done := 0, false
	for _, b := range mask.bytes(n) {
		k := bits.OnesCount8(b)
		if done && b != 0 || b != 0xff<<(8-k) {
			return 0, false
		}
		l, done = l+k, k < 8
	}
	return l, true
}

// portFormat prints port numbers, reserved ports by name.
type portFormat struct{}

func (portFormat) Text(v, _ Value, _ int) string { return portName(uint32(v.U64())) }

// ethTypeFormat prints eth_type as ovs-ofctl does: ip, arp and ipv6 as
// shorthand, anything else as a 4-digit hex number.
type ethTypeFormat struct{}

func (ethTypeFormat) Text(v, _ Value, _ int) string { return fmt.Sprintf("0x%04x", v.U64()) }

func (ethTypeFormat) Shorthand(v Value) string {
	switch uint16(v.U64()) {
	case EthTypeIPv4:
		return "ip"
	case EthTypeARP:
		return "arp"
	case EthTypeIPv6:
		return "ipv6"
	}
	return ""
}

// FlagsFormat prints a bit field by flag name, bit i named FlagsFormat[i]:
// a match under a mask as "+name" for each set bit and "-name" for each
// clear one (lowest bit first), an exact value as "name|name" ("0" for
// none). Bits without a name print as hex.
type FlagsFormat []string

// Text implements Format.
func (ff FlagsFormat) Text(v, mask Value, n int) string {
	name := func(i int) string {
		if i < len(ff) && ff[i] != "" {
			return ff[i]
		}
		return cHex(1 << i)
	}
	x, m := v.U64(), mask.U64()
	var b strings.Builder
	if mask == ones(n) {
		if x == 0 {
			return "0"
		}
		for i := range 64 {
			if x&(1<<i) != 0 {
				if b.Len() > 0 {
					b.WriteByte('|')
				}
				b.WriteString(name(i))
			}
		}
		return b.String()
	}
	for i := range 64 {
		if m&(1<<i) == 0 {
			continue
		}
		if x&(1<<i) != 0 {
			b.WriteByte('+')
		} else {
			b.WriteByte('-')
		}
		b.WriteString(name(i))
	}
	return b.String()
}
