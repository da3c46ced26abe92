package flow

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/contiv/libOpenflow/openflow13"

	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
)

func TestString(t *testing.T) {
	for _, c := range cases {
		if got := c.f.String(); got != c.text {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.text)
		}
	}
}

func TestCasesValid(t *testing.T) {
	for _, c := range cases {
		if err := c.f.Validate(); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	arpM := NewMatch(arp)
	tests := []struct {
		name string
		f    Flow
		want string
	}{
		{"nw_src without ip", Flow{Match: NewMatch(FieldIPv4Src.Addr(ip("10.0.0.1")))}, "ip_src needs eth_type 0x0800"},
		{"arp_op without arp", Flow{Match: NewMatch(FieldArpOp.Is(1))}, "arp_op needs eth_type 0x0806"},
		{"set arp_op without arp", Flow{Actions: []Action{FieldArpOp.Set(2)}}, "arp_op needs a match on eth_type 0x0806"},
		{"move arp without arp", Flow{Actions: []Action{Move{Whole(FieldArpSpa), Whole(FieldArpTpa)}}}, "arp_spa needs a match"},
		{"short mac", Flow{Match: NewMatch(FieldEthSrc.MAC([]byte{1, 2, 3}))}, "dl_src: not a 6-byte MAC"},
		{"short mask", Flow{Match: NewMatch(FieldEthDst.MACMasked(mac("0a:00:00:00:00:00"), []byte{1}))}, "dl_dst: not a 6-byte MAC"},
		{"ipv6 prefix", Flow{Match: NewMatch(FieldTunSrc.Prefix(pfx("2001:db8::/32")))}, "tun_src: 2001:db8::/32 is not an IPv4 prefix"},
		{"masked in_port", Flow{Match: NewMatch(FieldInPort.Masked(1, 1))}, "in_port: mask 1 not allowed"},
		{"non-cidr", Flow{Match: NewMatch(FieldTunSrc.Masked(0x0a000000, 0xff00ff00))}, "tun_src: mask 255.0.255.0 not allowed"},
		{"too wide", Flow{Match: NewMatch(FieldArpOp.Masked(1, 0x10001))}, "arp_op: value wider than 16 bits"},
		{"goto not last", Flow{Actions: []Action{GotoTable{2}, Output{1}}}, "goto_table must be the last action"},
		{"goto backward", Flow{Table: 3, Actions: []Action{GotoTable{3}}}, "tables only go forward"},
		{"output 0", Flow{Actions: []Action{Output{0}}}, "unsupported port 0"},
		{"output controller", Flow{Actions: []Action{Output{0xfffffffd}}}, "unsupported port"},
		{"bad set mac", Flow{Actions: []Action{FieldEthDst.SetMAC([]byte{1})}}, "not a 6-byte MAC"},
		{"bad set ip", Flow{Actions: []Action{FieldTunDst.SetAddr(ip("::1"))}}, "not an IPv4 address"},
		{"set read-only", Flow{Actions: []Action{FieldInPort.Set(1)}}, "in_port is not writable"},
		{"set too wide", Flow{Match: arpM, Actions: []Action{FieldArpOp.Set(0x10000)}}, "does not fit arp_op"},
		{"load too wide", Flow{Actions: []Action{Load{Bits(Reg(1), 0, 1), 2}}}, "does not fit 1 bits"},
		{"load outside", Flow{Actions: []Action{Load{Bits(Reg(1), 30, 4), 1}}}, "outside the 32-bit field"},
		{"move widths", Flow{Actions: []Action{Move{Whole(Reg(0)), Whole(FieldEthSrc)}}}, "32 bits into 48 bits"},
		{"move into eth_type", Flow{Actions: []Action{Move{Bits(Reg(0), 0, 16), Whole(FieldEthType)}}}, "eth_type is read-only"},
		{"move in_port", Flow{Actions: []Action{Move{Whole(FieldInPort), Whole(Reg(0))}}}, "in_port cannot be moved"},
		{"no register 9", Flow{Actions: []Action{RegField{Reg: 9, Bits: 1}.Load(1)}}, "no register 9"},
		{"no register 9 match", Flow{Match: NewMatch(RegField{Reg: 9, Bits: 1}.Is(1))}, "no register 9"},
	}
	for _, tt := range tests {
		err := tt.f.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error containing %q", tt.name, err, tt.want)
		}
		if _, err := tt.f.FlowMod(openflow13.FC_ADD); err == nil {
			t.Errorf("%s: FlowMod accepted an invalid flow", tt.name)
		}
	}
}

// statsBytes builds the ofp_flow_stats a switch would return for f, from the
// flow_mod we send: the round trip without a switch.
func statsBytes(t testing.TB, f Flow) []byte {
	t.Helper()
	fm, err := f.FlowMod(openflow13.FC_ADD)
	if err != nil {
		t.Fatal(err)
	}
	b, err := fm.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	rest := b[8+40:] // ofp_match onward
	out := make([]byte, flowStatsFixedLen, flowStatsFixedLen+len(rest))
	out = append(out, rest...)
	binary.BigEndian.PutUint16(out[0:2], uint16(len(out)))
	out[2] = f.Table
	binary.BigEndian.PutUint16(out[12:14], f.Priority)
	binary.BigEndian.PutUint64(out[24:32], f.Cookie)
	return out
}

func TestRoundTripWithoutSwitch(t *testing.T) {
	var body []byte
	for _, c := range cases {
		body = append(body, statsBytes(t, c.f)...)
	}
	stats, err := decodeFlowStats(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != len(cases) {
		t.Fatalf("decoded %d entries, want %d", len(stats), len(cases))
	}
	for i, s := range stats {
		c := cases[i]
		if s.Key() != c.f.Key() || s.Content() != c.f.Content() {
			t.Errorf("%s: key or content differ after encoding", c.name)
		}
		g, err := s.Flow()
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if g.String() != c.text {
			t.Errorf("%s: decoded as %s", c.name, g)
		}
	}
}

func TestKeyIgnoresFieldOrder(t *testing.T) {
	f := cases[2].f
	s, err := decodeFlowStats(statsBytes(t, f))
	if err != nil {
		t.Fatal(err)
	}
	tlvs, _ := splitTLVs(s[0].Match)
	var rev []byte
	for i := len(tlvs) - 1; i >= 0; i-- {
		rev = append(rev, tlvs[i]...)
	}
	s[0].Match = rev
	if s[0].Key() != f.Key() {
		t.Error("reordered match fields give another key")
	}
	if g, err := s[0].Flow(); err != nil || g.String() != f.String() {
		t.Errorf("reordered: %v %v", g, err)
	}
}

func TestKeyDistinguishes(t *testing.T) {
	seen := map[Key]string{}
	for _, c := range cases {
		if other, dup := seen[c.f.Key()]; dup {
			t.Errorf("%s and %s share a key", c.name, other)
		}
		seen[c.f.Key()] = c.name
	}
	a := cases[2].f
	b := a
	b.Cookie++
	if a.Key() != b.Key() || a.Content() == b.Content() {
		t.Error("cookie must change content, not key")
	}
	b = a
	b.Actions = []Action{regVNI.Load(101), GotoTable{5}}
	if a.Key() != b.Key() || a.Content() == b.Content() {
		t.Error("actions must change content, not key")
	}
	b = a
	b.Priority++
	if a.Key() == b.Key() {
		t.Error("priority must change the key")
	}
}

func TestDecodeErrors(t *testing.T) {
	good := statsBytes(t, cases[5].f)
	tests := []struct {
		name   string
		mutate func([]byte) []byte
		want   error
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)-8] }, ErrMalformed},
		{"short", func(b []byte) []byte { return b[:20] }, ErrMalformed},
		{"match type", func(b []byte) []byte { b[49] = 0; return b }, ErrMalformed},
		{"match length", func(b []byte) []byte { b[50], b[51] = 0xff, 0xf0; return b }, ErrMalformed},
		{"tlv length", func(b []byte) []byte { b[48+4+3] = 200; return b }, ErrMalformed},
	}
	for _, tt := range tests {
		b := tt.mutate(append([]byte(nil), good...))
		if _, err := decodeFlowStats(b); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestFlowRejectsUnsupported(t *testing.T) {
	base, err := decodeFlowStats(statsBytes(t, cases[0].f))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(*Stats)
	}{
		{"timeout", func(s *Stats) { s.IdleTimeout = 5 }},
		{"flags", func(s *Stats) { s.Flags = 1 }},
		{"unknown field", func(s *Stats) { s.Match = []byte{0x80, 0x00, 0x14, 0x01, 6} }}, // ip_proto
		{"nxm in_port", func(s *Stats) { s.Match = []byte{0x00, 0x00, 0x00, 0x02, 0, 1} }},
		{"masked in_port", func(s *Stats) { s.Match = []byte{0x80, 0x00, 0x01, 0x08, 0, 0, 0, 1, 0, 0, 0, 1} }},
		{"non-cidr", func(s *Stats) {
			s.Match = []byte{0x80, 0, 0x0a, 2, 8, 0, 0x80, 0x00, 0x17, 0x08, 10, 0, 0, 0, 255, 0, 255, 0}
		}},
		{"write_actions", func(s *Stats) { s.Instructions = []byte{0, 3, 0, 8, 0, 0, 0, 0} }},
		{"goto twice", func(s *Stats) { s.Instructions = append(s.Instructions, s.Instructions...) }},
		{"group action", func(s *Stats) { s.Instructions = []byte{0, 4, 0, 16, 0, 0, 0, 0, 0, 22, 0, 8, 0, 0, 0, 1} }},
		{"max_len", func(s *Stats) {
			s.Instructions = []byte{0, 4, 0, 24, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0}
		}},
	}
	for _, tt := range tests {
		s := base[0]
		tt.mutate(&s)
		if _, err := s.Flow(); !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want an unsupported/malformed error", tt.name, err)
		}
	}
}

func TestDeleteStrictFromStats(t *testing.T) {
	for _, c := range cases {
		s, err := decodeFlowStats(statsBytes(t, c.f))
		if err != nil {
			t.Fatal(err)
		}
		for _, fm := range []*openflow13.FlowMod{s[0].DeleteStrict(), c.f.Key().DeleteStrict()} {
			b, err := fm.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if int(binary.BigEndian.Uint16(b[2:4])) != len(b) || fm.Command != openflow13.FC_DELETE_STRICT ||
				fm.TableId != c.f.Table || fm.Priority != c.f.Priority || len(fm.Instructions) != 0 {
				t.Errorf("%s: bad delete %x", c.name, b)
			}
			ml := int(binary.BigEndian.Uint16(b[8+40+2:]))
			tlvs, err := splitTLVs(b[8+40+4 : 8+40+ml])
			if err != nil || canonicalMatch(tlvs) != c.f.Key().Match {
				t.Errorf("%s: delete matches something else (%v)", c.name, err)
			}
		}
	}
}

func TestDeleteStrictMalformedKey(t *testing.T) {
	for _, m := range []string{"", "\x80", "\x80\x00\x01\x09\x01"} {
		k := Key{Table: 1, Priority: 2, Match: m}
		b, err := k.DeleteStrict().MarshalBinary()
		if err != nil || int(binary.BigEndian.Uint16(b[2:4])) != len(b) {
			t.Errorf("%q: %x %v", m, b, err)
		}
	}
	s := Stats{Match: []byte{0x80, 0x00, 0x06}}
	if s.Key().Match != string(s.Match) {
		t.Error("malformed match bytes not kept in the key")
	}
}

func TestDump(t *testing.T) {
	got := Dump([]Flow{cases[0].f, cases[1].f})
	want := " " + cases[0].text + "\n " + cases[1].text + "\n"
	if got != want {
		t.Errorf("got %q want %q", got, want)
	}
}

func TestSort(t *testing.T) {
	var fs []Flow
	for i := len(cases) - 1; i >= 0; i-- {
		fs = append(fs, cases[i].f)
	}
	Sort(fs)
	for i := 1; i < len(fs); i++ {
		a, b := fs[i-1], fs[i]
		if a.Table > b.Table || a.Table == b.Table && a.Priority < b.Priority {
			t.Fatalf("out of order: %s before %s", a, b)
		}
	}
}

func TestStatsOfNil(t *testing.T) {
	if _, err := StatsOf(nil); err == nil {
		t.Error("nil accepted")
	}
	fs := openflow13.NewFlowStats()
	fs.Match.Fields = append(fs.Match.Fields, openflow13.MatchField{Class: 0x8000, HasMask: true, Length: 8})
	if _, err := StatsOf(fs); !errors.Is(err, ErrMalformed) {
		t.Errorf("nil match value: %v", err)
	}
}

// FuzzFlowStatsReply decodes flow-stats bodies the way the product does
// (openflow.ParseFlowStats, then FromReply) and requires every decoded flow
// to re-encode to itself.
func FuzzFlowStatsReply(f *testing.F) {
	for _, c := range cases {
		f.Add(statsBytes(f, c.f))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		replies, err := openflow.ParseFlowStats(b)
		if err != nil {
			return
		}
		for i := range replies {
			s, err := FromReply(&replies[i])
			if err != nil {
				continue
			}
			_ = s.Key()
			_ = s.DeleteStrict()
			g, err := s.Flow()
			if err != nil {
				continue
			}
			if g.Key() != s.Key() || g.Content() != s.Content() {
				t.Fatalf("decoded %s does not re-encode to the same flow", g)
			}
			_ = g.String()
		}
	})
}

// TestAddFlowModFromContent: the add built from a flow's Content is the
// same message, byte for byte, as FlowMod's, for every case.
func TestAddFlowModFromContent(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want, err := c.f.FlowMod(openflow13.FC_ADD)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.f.AddFlowMod(c.f.Content())
			if err != nil {
				t.Fatal(err)
			}
			got.Header.Xid = want.Header.Xid // a new one per message
			wb, _ := want.MarshalBinary()
			gb, err := got.MarshalBinary()
			if err != nil || !bytes.Equal(gb, wb) {
				t.Errorf("AddFlowMod: %x %v\nFlowMod:    %x", gb, err, wb)
			}
		})
	}
	if _, err := cases[0].f.AddFlowMod("short"); err == nil {
		t.Error("a content without a cookie was accepted")
	}
}

// TestMatchKeyPaths: the key sorted on the stack equals the one sorted the
// general way (used beyond 16 fields), for every case.
func TestMatchKeyPaths(t *testing.T) {
	for _, c := range cases {
		if a, b := matchKey(c.f.Match), matchKeyLong(c.f.Match); a != b {
			t.Errorf("%s: matchKey %x, matchKeyLong %x", c.name, a, b)
		}
	}
}
