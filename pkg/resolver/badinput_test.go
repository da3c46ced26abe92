package resolver

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// packQ packs a query for name/type with id, changed by edit.
func packQ(t testing.TB, id uint16, name string, qtype uint16, edit func(m *dns.Msg)) []byte {
	t.Helper()
	m := question(name, qtype)
	m.Id = id
	if edit != nil {
		edit(m)
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawConn is a UDP "container" socket bound to src, connected to gw.
func rawConn(t testing.TB, s *Server, gw, src netip.Addr) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp4", &net.UDPAddr{IP: src.AsSlice()}, net.UDPAddrFromAddrPort(netip.AddrPortFrom(gw, s.cfg.Port)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readUntil reads datagrams until one with id arrives; it returns the ones
// before it.
func readUntil(t testing.TB, c *net.UDPConn, id uint16) [][]byte {
	t.Helper()
	var before [][]byte
	buf := make([]byte, 65536)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("waiting for the answer %#x: %v", id, err)
		}
		if n >= 2 && binary.BigEndian.Uint16(buf) == id {
			return before
		}
		before = append(before, bytes.Clone(buf[:n]))
	}
}

func TestBadInputUDP(t *testing.T) {
	// One reader: messages are handled in the order sent, so the answer to
	// a good query sent after a bad one proves the bad one was handled.
	s := newTestServer(t, Config{UDPReaders: 1})
	loadNames(t, s)
	valid := packQ(t, 0x1111, "web.", dns.TypeA, nil)
	tests := []struct {
		name  string
		raw   []byte
		rcode int    // expected answer's rcode, -1: no answer
		drop  string // the drop reason counted when there is no answer
	}{
		{"empty datagram", []byte{}, -1, "short"},
		{"shorter than a header", valid[:11], -1, "short"},
		{"a response", packQ(t, 0x2222, "web.", dns.TypeA, func(m *dns.Msg) { m.Response = true }), -1, "response"},
		{"oversized", append(bytes.Clone(valid), make([]byte, maxQuery)...), -1, "oversized"},
		{"question cut short", valid[:len(valid)-3], dns.RcodeFormatError, ""},
		{"header only, one question announced", valid[:headerLen], dns.RcodeFormatError, ""},
		{"no question", packQ(t, 0x3333, "web.", dns.TypeA, func(m *dns.Msg) { m.Question = nil }), dns.RcodeFormatError, ""},
		{"two questions", packQ(t, 0x4444, "web.", dns.TypeA, func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }), dns.RcodeFormatError, ""},
		{"compression loop", append(bytes.Clone(valid[:headerLen]), 0xc0, 12, 0, 1, 0, 1), dns.RcodeFormatError, ""},
		{"opcode UPDATE", packQ(t, 0x5555, "web.", dns.TypeA, func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }), dns.RcodeNotImplemented, ""},
		{"opcode NOTIFY", packQ(t, 0x5556, "web.", dns.TypeSOA, func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }), dns.RcodeNotImplemented, ""},
		{"class CHAOS", packQ(t, 0x6666, "version.bind.", dns.TypeTXT, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }), dns.RcodeNotImplemented, ""},
		{"IXFR", packQ(t, 0x6667, "blue.ofctl.internal.", dns.TypeIXFR, nil), dns.RcodeNotImplemented, ""},
		{"EDNS version 1", packQ(t, 0x7777, "web.", dns.TypeA, func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) }), dns.RcodeBadVers, ""},
	}
	c := rawConn(t, s, blueGW, blueC)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var drops uint64
			if tt.drop != "" {
				drops = s.metricsFor("blue", "drops", tt.drop)
			}
			if _, err := c.Write(tt.raw); err != nil {
				t.Fatal(err)
			}
			goodID := uint16(0xA000 + i)
			if _, err := c.Write(packQ(t, goodID, "web.", dns.TypeA, nil)); err != nil {
				t.Fatal(err)
			}
			before := readUntil(t, c, goodID)
			if tt.rcode < 0 {
				if len(before) != 0 {
					t.Fatalf("answered %x, want no answer", before)
				}
				if got := s.metricsFor("blue", "drops", tt.drop); got != drops+1 {
					t.Errorf("drops{%s} went %d -> %d, want +1", tt.drop, drops, got)
				}
				return
			}
			if len(before) != 1 {
				t.Fatalf("%d answers, want 1", len(before))
			}
			r := new(dns.Msg)
			if err := r.Unpack(before[0]); err != nil {
				t.Fatalf("answer does not parse: %v", err)
			}
			if r.Rcode != tt.rcode || r.Id != binary.BigEndian.Uint16(tt.raw) || !r.Response {
				t.Errorf("answer %s id %#x, want %s for id %#x", dns.RcodeToString[r.Rcode], r.Id, dns.RcodeToString[tt.rcode], binary.BigEndian.Uint16(tt.raw))
			}
			if len(before[0]) > len(tt.raw) && tt.rcode == dns.RcodeFormatError {
				t.Errorf("FORMERR answer of %d bytes to a %d-byte message (amplification)", len(before[0]), len(tt.raw))
			}
		})
	}
}

func TestTruncation(t *testing.T) {
	s := newTestServer(t, Config{})
	for i := range 100 {
		if err := s.Names().Set("blue", Record{fmt.Sprint(i), "many", netip.AddrFrom4([4]byte{127, 10, 1, byte(i)})}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		proto   string
		edns    uint16
		maxSize int
		all     bool
	}{
		{"udp", 0, 512, false},
		{"udp", 4096, maxUDPAnswer, false},
		{"udp", 100, 512, false}, // an EDNS size under 512 means 512
		{"tcp", 0, dns.MaxMsgSize, true},
	}
	for _, tt := range tests {
		m := question("many.", dns.TypeA)
		if tt.edns > 0 {
			m.SetEdns0(tt.edns, false)
		}
		r := ask(t, s, blueGW, blueC, tt.proto, m)
		r.Compress = true // as sent: Len measures the packed size
		size := r.Len()
		if size > tt.maxSize || r.Truncated == tt.all || (len(r.Answer) == 100) != tt.all {
			t.Errorf("%s edns %d: %d bytes, TC=%v, %d records; want <= %d bytes, all=%v", tt.proto, tt.edns, size, r.Truncated, len(r.Answer), tt.maxSize, tt.all)
		}
	}
}

// tcpConn opens a TCP connection from src to gw.
func tcpConn(t testing.TB, s *Server, gw, src netip.Addr) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp4", netip.AddrPortFrom(gw, s.cfg.Port).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func writeTCP(t testing.TB, c net.Conn, msg []byte) {
	t.Helper()
	if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)); err != nil {
		t.Fatal(err)
	}
}

// readTCP returns the next message, or the error ending the connection.
func readTCP(c net.Conn) (*dns.Msg, error) {
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	return m, m.Unpack(b)
}

func TestBadInputTCP(t *testing.T) {
	s := newTestServer(t, Config{MaxTCPConns: 2})
	loadNames(t, s)

	// A short message and a response are skipped; the connection goes on.
	c := tcpConn(t, s, blueGW, blueC)
	writeTCP(t, c, []byte{1, 2, 3})
	writeTCP(t, c, packQ(t, 1, "web.", dns.TypeA, func(m *dns.Msg) { m.Response = true }))
	writeTCP(t, c, packQ(t, 2, "web.", dns.TypeA, nil))
	if r, err := readTCP(c); err != nil || r.Id != 2 || len(r.Answer) != 2 {
		t.Fatalf("after two bad messages: %v %v, want the answer to id 2", r, err)
	}
	// An oversized query closes the connection.
	writeTCP(t, c, make([]byte, maxQuery+1))
	if r, err := readTCP(c); err == nil {
		t.Fatalf("oversized query answered: %v", r)
	}
	if got := s.metricsFor("blue", "drops", "oversized"); got != 1 {
		t.Errorf("drops{oversized} = %d, want 1", got)
	}

	// Connection cap: two idle connections are served, a third is closed.
	// (First the closed connection's slot must be back.)
	for deadline := time.Now().Add(5 * time.Second); len(s.tcpSlots) != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d TCP slots still taken after the connection was closed", len(s.tcpSlots))
		}
	}
	idle1, idle2 := tcpConn(t, s, blueGW, blueC), tcpConn(t, s, blueGW, blueC)
	for i, ic := range []net.Conn{idle1, idle2} {
		writeTCP(t, ic, packQ(t, uint16(10+i), "db.", dns.TypeA, nil))
		if r, err := readTCP(ic); err != nil || r.Id != uint16(10+i) {
			t.Fatalf("connection %d under the cap: %v %v", i, r, err)
		}
	}
	third := tcpConn(t, s, blueGW, blueC)
	if _, err := readTCP(third); err == nil {
		t.Fatal("third connection served over the cap of 2")
	}
	if got := s.metricsFor("blue", "drops", "tcp_conns"); got != 1 {
		t.Errorf("drops{tcp_conns} = %d, want 1", got)
	}
	idle1.Close()
	// The slot comes back once the server has seen the close.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if r, err := exchangeFrom(s, blueGW, blueC, "tcp", question("db.", dns.TypeA)); err == nil && len(r.Answer) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no TCP answer after a connection closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
