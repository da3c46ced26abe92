package resolver

import (
	"encoding/binary"
	"net/netip"
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
	s, err := New(Config{Logger: quiet(), Upstreams: []netip.AddrPort{}})
	if err != nil {
		f.Fatal(err)
	}
	s.Names().SetSynced(true)
	nw := &network{name: "blue", zone: "blue.ofctl.internal.", gateway: ip("10.100.0.1"),
		subnet: netip.MustParsePrefix("10.100.0.0/16"), stats: s.metrics.network("blue")}
	for i := range 100 {
		_ = s.Names().Set("blue", Record{string(rune('a' + i%26)), "many", netip.AddrFrom4([4]byte{10, 100, 1, byte(i)})})
	}
	_ = s.Names().Set("blue", Record{"w", "web", ip("10.100.0.10")})
	src := netip.MustParseAddrPort("10.100.0.7:5353")
	f.Fuzz(func(t *testing.T, raw []byte, tcp bool) {
		x := &exchange{nw: nw, src: src, tcp: tcp, start: time.Now()}
		resp, kind, fwd := s.receive(raw, x)
		if fwd {
			if x.req == nil || len(x.req.Question) != 1 {
				t.Fatalf("forwarding a message without one question: %v", x.req)
			}
			resp, kind = errorReply(x.req, dns.RcodeServerFailure), KindServFail // what a failed forward sends
		}
		if resp == nil {
			if len(raw) >= headerLen && raw[2]&0x80 == 0 {
				t.Fatalf("query %x dropped", raw)
			}
			return
		}
		out := s.finish(x, resp, kind, nil)
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
	})
}
