package ovsdb

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// The snapshot's reader parses OVSDB server bytes by hand (atoms.go), so
// whatever the server sends must end in rows or an error, never a panic,
// and the framer must cut a stream into the same messages however the
// reads split it.
func FuzzParseSnapshot(f *testing.F) {
	for _, seed := range []string{
		snapshotAnswer,
		`{"id":"echo","method":"echo","params":[]}`,
		`{"id":1,"result":null,"error":"unknown database"}`,
		`{"id":1,"error":null,"result":[{"error":"unknown column","details":"no column x"}]}`,
		`{"id":1,"error":null,"result":[{"rows":[]},{"rows":[]},{"rows":[]},{"rows":[]}]}`,
		`]{"id":1}`,
		`{"id":1,"result":[{"rows":[{"name":"\u00e9\"\\"}]}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, ours, err := parseSnapshot(b)
		if err != nil && len(r.bridges)+len(r.ports)+len(r.ifaces)+len(r.root) > 0 {
			t.Fatalf("an error with rows (ours %v): %v", ours, err)
		}
		whole, wholeErr := frames(bytes.NewReader(b))
		split, splitErr := frames(iotest.OneByteReader(bytes.NewReader(b)))
		if !errors.Is(wholeErr, io.ErrUnexpectedEOF) || !errors.Is(splitErr, io.ErrUnexpectedEOF) {
			t.Fatalf("framing ends differently: %v vs %v", wholeErr, splitErr)
		}
		if len(whole) != len(split) {
			t.Fatalf("%d messages read whole, %d read byte by byte", len(whole), len(split))
		}
		for i := range whole {
			if !bytes.Equal(whole[i], split[i]) {
				t.Fatalf("message %d: %q read whole, %q byte by byte", i, whole[i], split[i])
			}
		}
	})
}

// frames reads every message of r, copied, until the framer's error.
func frames(r io.Reader) ([][]byte, error) {
	f := framer{r: r, buf: make([]byte, 0, 16)}
	var out [][]byte
	for {
		msg, err := f.next()
		if err != nil {
			return out, err
		}
		out = append(out, bytes.Clone(msg))
	}
}
