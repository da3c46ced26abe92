package flow

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// FieldMatch is one field of a match: Value under Mask. Value is already
// masked; a Mask of all ones over the field's width is an exact match. Make
// one with the Field's methods (Is, Masked, MAC, Prefix, ...).
type FieldMatch struct {
	Field Field
	Value Value
	Mask  Value
	err   error // the constructor's complaint about its input
}

// Is matches the field exactly equal to v.
func (f Field) Is(v uint64) FieldMatch { return f.IsValue(U64(v), ones(f.s.Bytes)) }

// Masked matches the bits of mask equal to v's.
func (f Field) Masked(v, mask uint64) FieldMatch { return f.IsValue(U64(v), U64(mask)) }

// IsValue matches the bits of mask equal to v's, for values of any width.
func (f Field) IsValue(v, mask Value) FieldMatch {
	return FieldMatch{Field: f, Value: v.and(mask), Mask: mask}
}

// MAC matches the field equal to mac.
func (f Field) MAC(mac net.HardwareAddr) FieldMatch {
	v, ok := MACValue(mac)
	if !ok {
		return f.invalid("%s: not a 6-byte MAC address", f.s.MatchName)
	}
	return f.IsValue(v, ones(f.s.Bytes))
}

// MACMasked matches the bits of mask equal to mac's.
func (f Field) MACMasked(mac, mask net.HardwareAddr) FieldMatch {
	v, ok1 := MACValue(mac)
	m, ok2 := MACValue(mask)
	if !ok1 || !ok2 {
		return f.invalid("%s: not a 6-byte MAC address", f.s.MatchName)
	}
	return f.IsValue(v, m)
}

// Prefix matches the field, an IPv4 or IPv6 address, within p. A prefix of
// length 0 matches anything: the field is not matched at all.
func (f Field) Prefix(p netip.Prefix) FieldMatch {
	n := f.s.Bytes
	if !p.IsValid() || p.Addr().BitLen() != 8*n {
		return f.invalid("%s: %s is not an IPv%d prefix", f.s.MatchName, p, map[bool]int{true: 4, false: 6}[n == 4])
	}
	var mask Value
	for i := range p.Bits() {
		mask[valueBytes-n+i/8] |= 0x80 >> (i % 8)
	}
	return f.IsValue(AddrValue(p.Addr()), mask)
}

// Addr matches the field equal to address a.
func (f Field) Addr(a netip.Addr) FieldMatch { return f.Prefix(netip.PrefixFrom(a, a.BitLen())) }

func (f Field) invalid(format string, args ...any) FieldMatch {
	return FieldMatch{Field: f, err: fmt.Errorf(format, args...)}
}

// Matches reports whether a packet whose field holds v satisfies fm.
func (fm FieldMatch) Matches(v Value) bool { return v.and(fm.Mask) == fm.Value }

// exact reports whether fm matches all bits of its field.
func (fm FieldMatch) exact() bool { return fm.Mask == ones(fm.Field.s.Bytes) }

// Host is the /32 prefix of an IPv4 address, for exact address matches.
func Host(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, 32) }

// Match is what a flow matches: at most one FieldMatch per field, kept in
// the order OVS encodes them. The zero Match matches every packet. A Match
// is a value: With returns a new one.
type Match struct{ fs []FieldMatch }

// NewMatch is the match of the given fields (see With).
func NewMatch(fms ...FieldMatch) Match { return Match{}.With(fms...) }

// With returns m also matching fms. A field already matched keeps its other
// bits: the new mask's bits are added to it (so two register fields in one
// register combine). A FieldMatch with an empty mask adds nothing.
func (m Match) With(fms ...FieldMatch) Match {
	out := make([]FieldMatch, len(m.fs), len(m.fs)+len(fms))
	copy(out, m.fs)
	for _, fm := range fms {
		if fm.err == nil && (fm.Field.IsZero() || fm.Mask == (Value{})) {
			continue
		}
		i := slices.IndexFunc(out, func(o FieldMatch) bool { return o.Field == fm.Field })
		switch {
		case i < 0 && fm.Field.IsZero(): // invalid, kept for Validate
			out = append(out, fm)
		case i < 0:
			i, _ = slices.BinarySearchFunc(out, fm.Field.s.WireOrder, func(o FieldMatch, w int) int {
				if o.Field.IsZero() {
					return 1
				}
				return o.Field.s.WireOrder - w
			})
			out = slices.Insert(out, i, fm)
		case fm.err != nil || out[i].err != nil:
			out[i] = fm
		default:
			o := &out[i]
			for b := range o.Mask {
				o.Value[b] = o.Value[b]&^fm.Mask[b] | fm.Value[b]
				o.Mask[b] |= fm.Mask[b]
			}
		}
	}
	return Match{out}
}

// Fields lists the matched fields in encoding order.
func (m Match) Fields() []FieldMatch { return slices.Clone(m.fs) }

// Get is the match on field f, if any.
func (m Match) Get(f Field) (FieldMatch, bool) {
	for _, fm := range m.fs {
		if fm.Field == f {
			return fm, true
		}
	}
	return FieldMatch{}, false
}

// EthType is the matched eth_type, 0 if none.
func (m Match) EthType() uint16 {
	if fm, ok := m.Get(FieldEthType); ok && fm.err == nil && fm.exact() {
		return uint16(fm.Value.U64())
	}
	return 0
}

// Validate reports malformed values, masks the field does not take, and
// missing prerequisites.
func (m Match) Validate() error {
	var errs []error
	for _, fm := range m.fs {
		if err := fm.validate(m); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (fm FieldMatch) validate(m Match) error {
	if fm.err != nil {
		return fm.err
	}
	s, n := fm.Field.s, fm.Field.s.Bytes
	_, cidr := prefixLen(fm.Mask, n)
	switch {
	case !fm.Mask.fits(n):
		return fmt.Errorf("%s: value wider than %d bits", s.MatchName, 8*n)
	case s.Masks == ExactOnly && !fm.exact(), s.Masks == CIDRMask && !cidr:
		return fmt.Errorf("%s: mask %s not allowed", s.MatchName, s.Format.Text(fm.Mask, ones(n), n))
	}
	return prereq(fm.Field, m, "needs eth_type")
}

// prereq checks that m matches the eth_type f requires.
func prereq(f Field, m Match, needs string) error {
	if p := f.s.Prereq; p != 0 && m.EthType() != p {
		return fmt.Errorf("%s %s 0x%04x", f.s.Name, needs, p)
	}
	return nil
}

// String formats the match as ovs-ofctl prints it, without priority.
func (m Match) String() string {
	type part struct {
		order int
		text  string
	}
	parts := make([]part, 0, len(m.fs))
	for _, fm := range m.fs {
		if fm.err != nil {
			continue
		}
		s := fm.Field.s
		if sh, ok := s.Format.(Shorthand); ok && fm.exact() {
			if w := sh.Shorthand(fm.Value); w != "" {
				parts = append(parts, part{ShorthandPrintOrder, w})
				continue
			}
		}
		parts = append(parts, part{s.PrintOrder, s.MatchName + "=" + s.Format.Text(fm.Value, fm.Mask, s.Bytes)})
	}
	slices.SortStableFunc(parts, func(a, b part) int { return a.order - b.order })
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p.text)
	}
	return b.String()
}

// appendTLV appends fm as an OXM/NXM TLV: exact fields carry no mask, as
// OVS returns them.
func (fm *FieldMatch) appendTLV(b []byte) []byte {
	n := fm.Field.s.Bytes
	h, size := fm.Field.wire().id(), n
	exact := fm.exact()
	if !exact {
		h, size = h|hasMaskBit, 2*n
	}
	b = binary.BigEndian.AppendUint32(b, h|uint32(size))
	b = append(b, fm.Value.bytes(n)...)
	if !exact {
		b = append(b, fm.Mask.bytes(n)...)
	}
	return b
}

// matchKey is the match's canonical form: its TLVs sorted and joined, so
// the same set of fields gives the same string whatever order the switch or
// we put them in. Invalid fields are left out: Validate reports them.
func matchKey(m Match) string {
	if len(m.fs) == 0 {
		return ""
	}
	// The TLVs are written into a buffer on the stack and sorted as spans
	// of it: the key is the one allocation (every flow built gets a key).
	var buf [256]byte
	b := buf[:0]
	var spans [16][2]int // start and end of each TLV in b
	n := 0
	for i := range m.fs {
		if m.fs[i].err != nil {
			continue
		}
		if n == len(spans) {
			return matchKeyLong(m)
		}
		start := len(b)
		b = m.fs[i].appendTLV(b)
		spans[n] = [2]int{start, len(b)}
		n++
	}
	for i := 1; i < n; i++ { // a few fields: insertion sort
		for j := i; j > 0 && bytes.Compare(b[spans[j][0]:spans[j][1]], b[spans[j-1][0]:spans[j-1][1]]) < 0; j-- {
			spans[j], spans[j-1] = spans[j-1], spans[j]
		}
	}
	var out strings.Builder
	out.Grow(len(b))
	for _, sp := range spans[:n] {
		out.Write(b[sp[0]:sp[1]])
	}
	return out.String()
}

// matchKeyLong is matchKey for a match of more fields than it sorts on
// the stack.
func matchKeyLong(m Match) string {
	var tlvs [][]byte
	for i := range m.fs {
		if m.fs[i].err == nil {
			tlvs = append(tlvs, m.fs[i].appendTLV(nil))
		}
	}
	return canonicalMatch(tlvs)
}

// canonicalMatch sorts TLVs and joins them.
func canonicalMatch(tlvs [][]byte) string {
	slices.SortFunc(tlvs, bytes.Compare)
	var b strings.Builder
	n := 0
	for _, t := range tlvs {
		n += len(t)
	}
	b.Grow(n)
	for _, t := range tlvs {
		b.Write(t)
	}
	return b.String()
}
