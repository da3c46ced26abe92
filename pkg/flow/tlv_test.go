package flow

import (
	"bytes"
	"testing"
)

// TestTLVMatchesLibOpenflow: the direct TLV encoding gives the bytes
// libOpenflow's MatchField marshals to, for every standard field, exact
// and masked.
func TestTLVMatchesLibOpenflow(t *testing.T) {
	for _, f := range standard.fields {
		n := f.s.Bytes
		full := ones(n)
		for _, fm := range []FieldMatch{
			f.IsValue(U64(0x0123456789abcdef), full),
			f.IsValue(U64(0x0102030405060708), U64(0xf0f0f0f0f0f0f0f0).and(full)),
			f.IsValue(U64(1), U64(1)),
		} {
			mf := fm.libField()
			want, err := mf.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if got := fm.appendTLV(nil); !bytes.Equal(got, want) {
				t.Errorf("%s value %x mask %x: tlv % x, libOpenflow % x", f, fm.Value, fm.Mask, got, want)
			}
		}
	}
}
