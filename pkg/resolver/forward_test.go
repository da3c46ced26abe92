package resolver

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// deadUpstream is a bound UDP socket and TCP listener that never answer.
func deadUpstream(t testing.TB, ip string) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp4", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

func fastForward() ForwardConfig {
	return ForwardConfig{Attempt: 150 * time.Millisecond, Timeout: time.Second}
}

func TestForwardFailover(t *testing.T) {
	dead := deadUpstream(t, "127.0.0.51")
	failing := startUpstream(t, "127.0.0.52", rcodeOnly(dns.RcodeServerFailure))
	good := startUpstream(t, "127.0.0.53", answerA("192.0.2.80"))
	s := newTestServer(t, Config{Upstreams: []netip.AddrPort{dead, failing.addr, good.addr}, Forward: fastForward()})
	r := ask(t, s, blueGW, blueC, "udp", question("www.example.org.", dns.TypeA))
	if got := addrsOf(r); len(got) != 1 || got[0] != ip("192.0.2.80") {
		t.Fatalf("answer %v, want the good upstream's", r)
	}
	if s.metricsFor("blue", "answers", "forwarded") != 1 {
		t.Error("not counted as forwarded")
	}
	// The upstream that answered is asked first next time.
	ask(t, s, blueGW, blueC, "udp", question("www.example.org.", dns.TypeA))
	if failing.count() != 1 || good.count() != 2 {
		t.Errorf("queries: failing %d, good %d; want 1, 2", failing.count(), good.count())
	}
	want := map[upstreamFailure]uint64{{dead, "timeout"}: 1, {failing.addr, "servfail"}: 1}
	s.metrics.mu.Lock()
	got := s.metrics.upstream
	s.metrics.mu.Unlock()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("upstream failures %v, want %v", got, want)
	}
}

func TestForwardAllFail(t *testing.T) {
	refusing := startUpstream(t, "127.0.0.52", rcodeOnly(dns.RcodeRefused))
	s := newTestServer(t, Config{Upstreams: []netip.AddrPort{deadUpstream(t, "127.0.0.51"), refusing.addr}, Forward: fastForward()})
	start := time.Now()
	r := ask(t, s, blueGW, blueC, "udp", question("www.example.org.", dns.TypeA))
	took := time.Since(start)
	if r.Rcode != dns.RcodeServerFailure {
		t.Errorf("%s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	if refusing.count() != 2 { // Rounds 2
		t.Errorf("refusing upstream asked %d times, want 2", refusing.count())
	}
	if took > 2*time.Second {
		t.Errorf("SERVFAIL after %v, past the 1 s forwarding timeout", took)
	}
	if s.metricsFor("blue", "answers", "servfail") != 1 {
		t.Error("not counted as servfail")
	}
}

func TestForwardNoUpstream(t *testing.T) {
	s := newTestServer(t, Config{})
	if r := ask(t, s, blueGW, blueC, "udp", question("www.example.org.", dns.TypeA)); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("%s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
}

func TestNeverForwardToItself(t *testing.T) {
	good := startUpstream(t, "127.0.0.53", answerA("192.0.2.80"))
	port := freePort(t)
	self := netip.AddrPortFrom(blueGW, port)
	s := newTestServer(t, Config{Port: port, Upstreams: []netip.AddrPort{self, good.addr}, Forward: fastForward()})
	if got := s.Upstreams(); !slices.Equal(got, []netip.AddrPort{good.addr}) {
		t.Errorf("Upstreams() = %v, want only %v", got, good.addr)
	}
	if r := ask(t, s, blueGW, blueC, "udp", question("www.example.org.", dns.TypeA)); len(addrsOf(r)) != 1 {
		t.Errorf("answer %v", r)
	}
	if s.metricsFor("blue", "queries", "") != 1 {
		t.Errorf("blue received %d queries, want 1 (forwarded to itself?)", s.metricsFor("blue", "queries", ""))
	}
}

// many answers n A records.
func many(n int, tcpOnly bool) func(w dns.ResponseWriter, r *dns.Msg) {
	return func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if _, udp := w.RemoteAddr().(*net.UDPAddr); udp && tcpOnly {
			m.Truncated = true
			_ = w.WriteMsg(m)
			return
		}
		for i := range n {
			rr, _ := dns.NewRR(fmt.Sprintf("%s 60 IN A 192.0.2.%d", r.Question[0].Name, i))
			m.Answer = append(m.Answer, rr)
		}
		_ = w.WriteMsg(m)
	}
}

func TestForwardTruncation(t *testing.T) {
	// The upstream truncates every UDP answer: the resolver asks again over TCP.
	up := startUpstream(t, "127.0.0.53", many(60, true))
	s := newTestServer(t, Config{Upstreams: []netip.AddrPort{up.addr}, Forward: fastForward()})
	r := ask(t, s, blueGW, blueC, "tcp", question("big.example.org.", dns.TypeA))
	if len(r.Answer) != 60 || r.Truncated {
		t.Errorf("over TCP: %d records TC=%v, want 60", len(r.Answer), r.Truncated)
	}
	// A UDP client without EDNS gets what fits in 512 bytes and TC.
	r = ask(t, s, blueGW, blueC, "udp", question("big.example.org.", dns.TypeA))
	if !r.Truncated || len(r.Answer) == 60 {
		t.Errorf("over UDP: %d records TC=%v, want truncated", len(r.Answer), r.Truncated)
	}
	if r.Id == 0 || r.Question[0].Name != "big.example.org." {
		t.Errorf("answer not to the client's query: %v", r)
	}
}

// blocking answers once release is closed.
func blocking(release chan struct{}) func(w dns.ResponseWriter, r *dns.Msg) {
	return func(w dns.ResponseWriter, r *dns.Msg) {
		<-release
		answerA("192.0.2.80")(w, r)
	}
}

func TestForwardCaps(t *testing.T) {
	release := make(chan struct{})
	up := startUpstream(t, "127.0.0.53", blocking(release))
	cfg := ForwardConfig{Attempt: 5 * time.Second, Timeout: 5 * time.Second, MaxInFlight: 5, MaxInFlightPerSource: 3}
	s := newTestServer(t, Config{Upstreams: []netip.AddrPort{up.addr}, Forward: cfg})
	defer close(release)
	goroutines := runtime.NumGoroutine()
	c1 := rawConn(t, s, blueGW, blueC)
	for i := range 10 {
		_, _ = c1.Write(packQ(t, uint16(100+i), fmt.Sprintf("n%d.example.org.", i), dns.TypeA, nil))
	}
	waitCounter(t, s, "blue", "source_overload", 7)
	c2 := rawConn(t, s, blueGW, ip("127.10.0.8"))
	for i := range 3 {
		_, _ = c2.Write(packQ(t, uint16(200+i), fmt.Sprintf("m%d.example.org.", i), dns.TypeA, nil))
	}
	waitCounter(t, s, "blue", "overload", 1)
	if n := s.metrics.inflight.Load(); n != 5 {
		t.Errorf("in flight %d, want 5", n)
	}
	if extra := runtime.NumGoroutine() - goroutines; extra > 5+10 { // 5 forwards (+ the upstream's own handlers)
		t.Errorf("%d more goroutines with 5 forwards in flight", extra)
	}
	// A local name is answered while the cap is reached.
	if r := ask(t, s, blueGW, ip("127.10.0.9"), "udp", question("nope.", dns.TypeA)); r.Rcode != dns.RcodeNameError {
		t.Errorf("local answer under forwarding overload: %v", r)
	}
	release <- struct{}{} // one handler goes on; the others follow at close
	readUntil(t, c1, 100)
}

func waitCounter(t testing.TB, s *Server, network, drop string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.metricsFor(network, "drops", drop) < want {
		if time.Now().After(deadline) {
			t.Fatalf("drops{%s} = %d, want %d", drop, s.metricsFor(network, "drops", drop), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := s.metricsFor(network, "drops", drop); got != want {
		t.Fatalf("drops{%s} = %d, want %d", drop, got, want)
	}
}

// TestFlood: 5,000 queries for outside names from one container while the
// upstream never answers keep goroutines bounded, and another container's
// queries are answered meanwhile.
func TestFlood(t *testing.T) {
	s := newTestServer(t, Config{Upstreams: []netip.AddrPort{deadUpstream(t, "127.0.0.51")},
		Forward: ForwardConfig{Attempt: 2 * time.Second, Timeout: 2 * time.Second}})
	loadNames(t, s)
	base := runtime.NumGoroutine()
	flood := rawConn(t, s, blueGW, blueC)
	q := packQ(t, 1, "flood.example.org.", dns.TypeA, nil)
	peak := 0
	for i := range 5000 {
		binary.BigEndian.PutUint16(q, uint16(i))
		_, _ = flood.Write(q)
		if i%500 == 0 {
			peak = max(peak, runtime.NumGoroutine()-base)
		}
	}
	// Another container's query is answered. The flood shares the socket's
	// kernel buffer, which may drop a datagram: the client retries, as a
	// stub resolver does (timeout:1 attempts:3).
	var r *dns.Msg
	for attempt := 0; r == nil && attempt < 3; attempt++ {
		c := &dns.Client{Net: "udp", Timeout: time.Second, Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: ip("127.10.0.8").AsSlice()}}}
		r, _, _ = c.Exchange(question("web.", dns.TypeA), netip.AddrPortFrom(blueGW, s.cfg.Port).String())
	}
	if r == nil || len(addrsOf(r)) != 2 {
		t.Errorf("local answer during the flood: %v", r)
	}
	peak = max(peak, runtime.NumGoroutine()-base)
	if peak > 64+20 { // the per-source cap, plus the client's own
		t.Errorf("goroutines grew by %d during the flood, want <= 84", peak)
	}
	if d := s.metricsFor("blue", "drops", "source_overload"); d == 0 {
		t.Error("no query dropped over the per-source cap")
	}
}
