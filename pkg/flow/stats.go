package flow

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/contiv/libOpenflow/openflow13"
)

// ErrMalformed marks flow stats bytes that do not parse.
var ErrMalformed = errors.New("malformed flow stats")

// ErrUnsupported marks a flow that parses but uses something Flow cannot
// represent (another field or action, a timeout, a flag).
var ErrUnsupported = errors.New("unsupported flow")

// Stats is one flow as the switch reports it in an OFPMP_FLOW reply. Match
// and Instructions keep the switch's bytes, so Key and Content work for any
// flow, ours or not.
type Stats struct {
	Table        uint8
	Priority     uint16
	Cookie       uint64
	Flags        uint16
	IdleTimeout  uint16
	HardTimeout  uint16
	Packets      uint64
	Bytes        uint64
	Duration     time.Duration
	Match        []byte // OXM TLVs, without the ofp_match header and padding
	Instructions []byte
}

// splitTLVs cuts OXM/NXM TLVs apart, checking their lengths.
func splitTLVs(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, fmt.Errorf("%w: %d-byte match field header", ErrMalformed, len(b))
		}
		n := 4 + int(b[3])
		if n > len(b) || n == 4 {
			return nil, fmt.Errorf("%w: match field of %d bytes with %d left", ErrMalformed, n, len(b))
		}
		out = append(out, b[:n])
		b = b[n:]
	}
	return out, nil
}

// Key is the flow's identity, comparable with Flow.Key. Match bytes that
// do not split into TLVs (possible only in a Stats not made by
// FromReply) are kept as they are: such a key equals no Flow's key.
func (s Stats) Key() Key {
	tlvs, err := splitTLVs(s.Match)
	if err != nil {
		return Key{Table: s.Table, Priority: s.Priority, Match: string(s.Match)}
	}
	return Key{Table: s.Table, Priority: s.Priority, Match: canonicalMatch(tlvs)}
}

// Content is the flow's cookie and instructions, comparable with Flow.Content.
func (s Stats) Content() Content { return makeContent(s.Cookie, s.Instructions) }

// Flow decodes the entry into a Flow with the standard vocabulary (see
// FlowIn).
func (s Stats) Flow() (Flow, error) { return s.FlowIn(standard) }

// FlowIn decodes the entry into a Flow, knowing the fields and actions of
// v. It fails with ErrUnsupported when the flow uses anything else or
// cannot be represented exactly (re-encoding must give back the same key
// and content), and never panics.
func (s Stats) FlowIn(v Vocabulary) (Flow, error) {
	if s.IdleTimeout != 0 || s.HardTimeout != 0 || s.Flags != 0 {
		return Flow{}, fmt.Errorf("%w: timeouts or flags set", ErrUnsupported)
	}
	tlvs, err := splitTLVs(s.Match)
	if err != nil {
		return Flow{}, err
	}
	m, err := v.decodeMatch(tlvs)
	if err != nil {
		return Flow{}, err
	}
	actions, err := v.decodeInstructions(s.Instructions)
	if err != nil {
		return Flow{}, err
	}
	f := Flow{Table: s.Table, Priority: s.Priority, Cookie: s.Cookie, Match: m, Actions: actions}
	if f.Key() != s.Key() || f.Content() != s.Content() {
		return Flow{}, fmt.Errorf("%w: non-canonical encoding of %q", ErrUnsupported, f.String())
	}
	return f, nil
}

// DeleteStrict is a DELETE_STRICT flow_mod for this entry, built from the
// switch's own match bytes: it removes the flow even when Flow cannot decode it.
func (s Stats) DeleteStrict() *openflow13.FlowMod { return s.Key().DeleteStrict() }

// DeleteStrict is a DELETE_STRICT flow_mod for the flow with this key (the
// canonical match is itself a valid OXM match). A key made from malformed
// match bytes gives a flow_mod carrying those bytes, which the switch
// rejects: it never deletes another flow.
func (k Key) DeleteStrict() *openflow13.FlowMod {
	fm := openflow13.NewFlowMod()
	fm.Command = openflow13.FC_DELETE_STRICT
	fm.TableId = k.Table
	fm.Priority = k.Priority
	tlvs, err := splitTLVs([]byte(k.Match))
	if err != nil {
		raw := []byte(k.Match)
		tlvs = [][]byte{append(raw, make([]byte, max(0, 4-len(raw)))...)}
	}
	for _, t := range tlvs {
		fm.Match.AddField(rawField(t))
	}
	return fm
}

// rawField is a libOpenflow match field that marshals back to exactly t
// (at least 4 bytes: header, then value and mask).
func rawField(t []byte) openflow13.MatchField {
	mf := openflow13.MatchField{Class: binary.BigEndian.Uint16(t[0:2]), Field: t[2] >> 1, HasMask: t[2]&1 == 1,
		Length: t[3], Value: &rawValue{append([]byte(nil), t[4:]...)}}
	if mf.HasMask { // libOpenflow writes Value then Mask
		half := 4 + (len(t)-4+1)/2
		mf.Value, mf.Mask = &rawValue{append([]byte(nil), t[4:half]...)}, &rawValue{append([]byte(nil), t[half:]...)}
	}
	return mf
}

// StatsOf converts a libOpenflow FlowStats by re-marshalling its match
// fields and instructions. The result is only as good as the FlowStats: one
// decoded by libOpenflow has lost its MAC addresses (see openflow.ParseFlowStats).
func StatsOf(fs *openflow13.FlowStats) (s Stats, err error) {
	if fs == nil {
		return Stats{}, fmt.Errorf("%w: nil FlowStats", ErrMalformed)
	}
	defer func() {
		if r := recover(); r != nil { // libOpenflow marshals nil fields by panicking
			err = fmt.Errorf("%w: libOpenflow: %v", ErrMalformed, r)
		}
	}()
	s = Stats{Table: fs.TableId, Priority: fs.Priority, Cookie: fs.Cookie, Flags: fs.Flags,
		IdleTimeout: fs.IdleTimeout, HardTimeout: fs.HardTimeout, Packets: fs.PacketCount, Bytes: fs.ByteCount,
		Duration: time.Duration(fs.DurationSec)*time.Second + time.Duration(fs.DurationNSec)}
	for _, mf := range fs.Match.Fields {
		b, err := mf.MarshalBinary()
		if err != nil {
			return Stats{}, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		s.Match = append(s.Match, b...)
	}
	if _, err := splitTLVs(s.Match); err != nil {
		return Stats{}, err
	}
	for _, in := range fs.Instructions {
		b, err := in.MarshalBinary()
		if err != nil {
			return Stats{}, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		s.Instructions = append(s.Instructions, b...)
	}
	return s, nil
}
