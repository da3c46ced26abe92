package flow

import (
	"bytes"
	"testing"
)

// TestTLVMatchesLibOpenflow: the direct TLV encoding gives the bytes
// libOpenflow's MatchField marshals to, for every field, exact and masked.
func TestTLVMatchesLibOpenflow(t *testing.T) {
	for f := FieldInPort; f < fieldEnd; f++ {
		fi, ok := f.info()
		if !ok {
			t.Fatalf("field %d has no info", f)
		}
		full := fullMask(fi.bytes)
		for _, e := range []entry{
			{field: f, value: 0x0123456789abcdef & full, mask: full},
			{field: f, value: 0x0102030405060708 & full & 0xf0f0f0f0f0f0f0f0, mask: full & 0xf0f0f0f0f0f0f0f0},
			{field: f, value: 1, mask: 1},
		} {
			mf := e.libField()
			want, err := mf.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if got := e.tlv(); !bytes.Equal(got, want) {
				t.Errorf("%s value %#x mask %#x: tlv % x, libOpenflow % x", fi.name, e.value, e.mask, got, want)
			}
		}
	}
}
