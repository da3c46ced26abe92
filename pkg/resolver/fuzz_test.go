package resolver

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// FuzzQuery feeds arbitrary messages to the query path (parse, answer from
// the table, pack within the client's size): it must never panic, and any
// answer must parse, carry the query's ID and fit the transport. Seeds:
// testdata/fuzz/FuzzQuery (queries captured from dig) and those below.
func FuzzQuery(f *testing.F) {
	for _, seed := range [][]byte{
		packQ(f, 1, "web.", dns.TypeA, nil),
		packQ(f, 2, "web.blue.ofctl.internal.", dns.TypeAAAA, func(m *dns.Msg) { m.SetEdns0(4096, true) }),
		packQ(f, 3, "10.0.100.10.in-addr.arpa.", dns.TypePTR, nil),
		packQ(f, 4, "www.example.org.", dns.TypeA, nil),
		packQ(f, 5, "many.", dns.TypeANY, func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }),
		packQ(f, 6, "web.", dns.TypeA, func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }),
		packQ(f, 7, "web.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(100, false); m.IsEdns0().SetVersion(3) }),
		{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1},
		{0xff, 0xff},
	} {
		f.Add(seed, false)
	}
	s, nw := fuzzServer(f)
	src := netip.MustParseAddrPort("10.100.0.7:5353")
	sc, sc2 := newScratch(), newScratch()
	f.Fuzz(func(t *testing.T, raw []byte, tcp bool) {
		x := &exchange{nw: nw, src: src, tcp: tcp, start: time.Now()}
		out, fwd := s.receive(raw, x, sc)
		if fwd {
			if x.req == nil || len(x.req.Question) != 1 {
				t.Fatalf("forwarding a message without one question: %v", x.req)
			}
			out = s.finish(x, errorReply(x.req, dns.RcodeServerFailure), KindServFail, nil) // what a failed forward sends
		}
		if out == nil {
			if len(raw) >= headerLen && raw[2]&0x80 == 0 {
				t.Fatalf("query %x dropped", raw)
			}
			return
		}
		limit := maxUDPAnswer
		if tcp {
			limit = dns.MaxMsgSize
		}
		if len(out) > limit {
			t.Fatalf("%d-byte answer over %s", len(out), map[bool]string{true: "TCP", false: "UDP"}[tcp])
		}
		m := new(dns.Msg)
		if err := m.Unpack(out); err != nil {
			t.Fatalf("answer %x does not parse: %v", out, err)
		}
		if m.Id != binary.BigEndian.Uint16(raw) || !m.Response {
			t.Fatalf("answer id %#x response=%v to query id %#x", m.Id, m.Response, binary.BigEndian.Uint16(raw))
		}
		// The fast path answers as the general one would.
		if !fwd {
			x2 := &exchange{nw: nw, src: src, tcp: tcp, start: time.Now()}
			general, _ := s.receiveGeneral(raw, x2, sc2)
			if err := sameAnswer(out, general); err != nil {
				t.Fatalf("query %x: fast and general paths differ: %v", raw, err)
			}
		}
	})
}

// fuzzServer serves "blue" (10.100.0.0/16) with "web", 100 "many" and a PTR.
func fuzzServer(t testing.TB) (*Server, *network) {
	s, err := New(Config{Logger: quiet(), Upstreams: []netip.AddrPort{}})
	if err != nil {
		t.Fatal(err)
	}
	s.Names().SetSynced(true)
	nw := s.newNetwork("blue", ip("10.100.0.1"), netip.MustParsePrefix("10.100.0.0/16"))
	for i := range 100 {
		_ = s.Names().Set("blue", Record{fmt.Sprint(i), "many", netip.AddrFrom4([4]byte{10, 100, 1, byte(i)})})
	}
	_ = s.Names().Set("blue", Record{"w", "web", ip("10.100.0.10")})
	_ = s.Names().Set("blue", Record{"w2", "web", ip("10.100.0.11")})
	return s, nw
}

// sameAnswer compares two encoded answers as a client sees them: header
// bits, rcode, the sets of records per section (order aside: rotation).
func sameAnswer(a, b []byte) error {
	ma, mb := new(dns.Msg), new(dns.Msg)
	if err := ma.Unpack(a); err != nil {
		return fmt.Errorf("first: %w", err)
	}
	if err := mb.Unpack(b); err != nil {
		return fmt.Errorf("second: %w", err)
	}
	if ma.MsgHdr != mb.MsgHdr {
		return fmt.Errorf("headers %+v != %+v", ma.MsgHdr, mb.MsgHdr)
	}
	if fmt.Sprint(ma.Question) != fmt.Sprint(mb.Question) {
		return fmt.Errorf("questions %v != %v", ma.Question, mb.Question)
	}
	for _, sec := range [][2][]dns.RR{{ma.Answer, mb.Answer}, {ma.Ns, mb.Ns}, {ma.Extra, mb.Extra}} {
		if x, y := rrSet(sec[0]), rrSet(sec[1]); x != y {
			return fmt.Errorf("records\n%s\n!=\n%s", x, y)
		}
	}
	return nil
}

func rrSet(rrs []dns.RR) string {
	s := make([]string, len(rrs))
	for i, rr := range rrs {
		s[i] = rr.String()
	}
	slices.Sort(s)
	return strings.Join(s, "\n")
}

// TestFastPathSameAnswers: the usual queries take the fast path, and their
// answers are those of the general path.
func TestFastPathSameAnswers(t *testing.T) {
	s, nw := fuzzServer(t)
	src := netip.MustParseAddrPort("10.100.0.7:5353")
	edns := func(size uint16, do bool) func(m *dns.Msg) { return func(m *dns.Msg) { m.SetEdns0(size, do) } }
	tests := []struct {
		name  string
		raw   []byte
		tcp   bool
		fast  bool // expected to be answered by the fast path
		rcode int
		// truncated: the answers kept depend on the rotation, which
		// moved between the two calls; only the header is compared
		truncated bool
	}{
		{"bare A", packQ(t, 1, "web.", dns.TypeA, nil), false, true, dns.RcodeSuccess, false},
		{"qualified A, mixed case, EDNS with DO", packQ(t, 2, "WeB.Blue.Ofctl.Internal.", dns.TypeA, edns(1232, true)), false, true, dns.RcodeSuccess, false},
		{"NODATA with SOA", packQ(t, 3, "web.blue.ofctl.internal.", dns.TypeAAAA, nil), false, true, dns.RcodeSuccess, false},
		{"NODATA bare", packQ(t, 4, "web.", dns.TypeMX, nil), false, true, dns.RcodeSuccess, false},
		{"NXDOMAIN with SOA", packQ(t, 5, "nope.blue.ofctl.internal.", dns.TypeA, edns(4096, false)), false, true, dns.RcodeNameError, false},
		{"NXDOMAIN bare, CD and no RD", packQ(t, 6, "nope.", dns.TypeA, func(m *dns.Msg) { m.CheckingDisabled = true; m.RecursionDesired = false }), false, true, dns.RcodeNameError, false},
		{"zone apex", packQ(t, 7, "blue.ofctl.internal.", dns.TypeA, nil), false, true, dns.RcodeSuccess, false},
		{"100 addresses over TCP", packQ(t, 8, "many.", dns.TypeA, nil), true, true, dns.RcodeSuccess, false},
		{"100 addresses over UDP: truncated by the general path", packQ(t, 9, "many.", dns.TypeA, nil), false, false, dns.RcodeSuccess, true},
		{"PTR: general path", packQ(t, 10, "10.0.100.10.in-addr.arpa.", dns.TypePTR, nil), false, false, dns.RcodeSuccess, false},
		{"SOA answer: general path", packQ(t, 11, "ofctl.internal.", dns.TypeSOA, nil), false, false, dns.RcodeSuccess, false},
		{"EDNS option LLQ cut short: general path", packQ(t, 13, "web.", dns.TypeA, func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_LOCAL{Code: dns.EDNS0LLQ, Data: make([]byte, 8)})
		}), false, false, dns.RcodeFormatError, false},
		{"EDNS cookie: fast path", packQ(t, 14, "web.", dns.TypeA, func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0102030405060708"})
		}), false, true, dns.RcodeSuccess, false},
		{"EDNS version 1: general path", packQ(t, 12, "web.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) }), false, false, dns.RcodeBadVers, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var q query
			var f fastQuery
			sc := newScratch()
			fast := false
			if parseFast(tt.raw, sc, &q, &f) {
				s.ans.decide(&q, nw, src.Addr(), &sc.res)
				_, fast = s.ans.appendFast(sc.out, tt.raw, &f, &sc.res, tt.tcp)
			}
			if fast != tt.fast {
				t.Errorf("fast path taken: %v, want %v", fast, tt.fast)
			}
			a, _ := s.receive(tt.raw, &exchange{nw: nw, src: src, tcp: tt.tcp}, newScratch())
			b, _ := s.receiveGeneral(tt.raw, &exchange{nw: nw, src: src, tcp: tt.tcp}, newScratch())
			if err := sameAnswer(a, b); err != nil && !tt.truncated {
				t.Error(err)
			}
			m, m2 := new(dns.Msg), new(dns.Msg)
			if err := m.Unpack(a); err != nil || m.Rcode != tt.rcode {
				t.Errorf("rcode %v (%v), want %s", m.Rcode, err, dns.RcodeToString[tt.rcode])
			}
			if err := m2.Unpack(b); err != nil || m.MsgHdr != m2.MsgHdr || len(m.Answer) != len(m2.Answer) {
				t.Errorf("headers %+v / %+v, %d / %d answers (%v)", m.MsgHdr, m2.MsgHdr, len(m.Answer), len(m2.Answer), err)
			}
		})
	}
}
