package resolver

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// The unit tests serve on loopback addresses (all of 127/8 is local on
// Linux): network blue on 127.10.0.1 (subnet 127.10.0.0/16), red on
// 127.20.0.1 (127.20.0.0/16); a "container" binds its source address.
var (
	blueGW  = netip.MustParseAddr("127.10.0.1")
	blueNet = netip.MustParsePrefix("127.10.0.0/16")
	redGW   = netip.MustParseAddr("127.20.0.1")
	redNet  = netip.MustParsePrefix("127.20.0.0/16")
	blueC   = netip.MustParseAddr("127.10.0.7") // a blue client
	redC    = netip.MustParseAddr("127.20.0.7") // a red client
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// freePort returns a port free for UDP and TCP on the test addresses.
func freePort(t testing.TB) uint16 {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := uint16(pc.LocalAddr().(*net.UDPAddr).Port)
		pc.Close()
		ok := true
		for _, a := range []netip.Addr{blueGW, redGW} {
			ln, err := net.Listen("tcp4", netip.AddrPortFrom(a, port).String())
			if err != nil {
				ok = false
				break
			}
			ln.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// newTestServer serves blue and red with cfg (Port, Logger and Upstreams
// filled in when unset: no upstream unless given).
func newTestServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	if cfg.Port == 0 {
		cfg.Port = freePort(t)
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	if cfg.Upstreams == nil {
		cfg.Upstreams = []netip.AddrPort{}
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.SetNetwork("blue", blueGW, blueNet); err != nil {
		t.Fatal(err)
	}
	if err := s.SetNetwork("red", redGW, redNet); err != nil {
		t.Fatal(err)
	}
	s.Names().SetSynced(true)
	return s
}

// ask sends m from src to the server's gateway of a network, over net
// ("udp" or "tcp").
func ask(t testing.TB, s *Server, gw, src netip.Addr, proto string, m *dns.Msg) *dns.Msg {
	t.Helper()
	r, err := exchangeFrom(s, gw, src, proto, m)
	if err != nil {
		t.Fatalf("%v %v from %v: %v", m.Question, gw, src, err)
	}
	return r
}

func exchangeFrom(s *Server, gw, src netip.Addr, proto string, m *dns.Msg) (*dns.Msg, error) {
	local := net.Addr(&net.UDPAddr{IP: src.AsSlice()})
	if proto == "tcp" {
		local = &net.TCPAddr{IP: src.AsSlice()}
	}
	c := &dns.Client{Net: proto, Timeout: 5 * time.Second, Dialer: &net.Dialer{LocalAddr: local}}
	r, _, err := c.Exchange(m, netip.AddrPortFrom(gw, s.cfg.Port).String())
	return r, err
}

func question(name string, t uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, t)
	return m
}

// upstream is a DNS server on a loopback address standing for the host's
// resolver: it answers with handle.
type upstream struct {
	addr    netip.AddrPort
	mu      sync.Mutex
	queries int
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.queries
}

// startUpstream serves handle on ip (UDP and TCP, same port).
func startUpstream(t testing.TB, ip string, handle func(w dns.ResponseWriter, r *dns.Msg)) *upstream {
	t.Helper()
	pc, err := net.ListenPacket("udp4", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	ln, err := net.Listen("tcp4", netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(port)).String())
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{addr: netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(port))}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		u.mu.Lock()
		u.queries++
		u.mu.Unlock()
		handle(w, r)
	})
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // runs after the shutdowns registered below
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		wg.Add(1)
		go func() { defer wg.Done(); _ = srv.ActivateAndServe() }()
		<-started
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = srv.ShutdownContext(ctx)
		})
	}
	return u
}

// answerA answers every A query with addr.
func answerA(addr string) func(w dns.ResponseWriter, r *dns.Msg) {
	return func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if r.Question[0].Qtype == dns.TypeA {
			rr, _ := dns.NewRR(r.Question[0].Name + " 60 IN A " + addr)
			m.Answer = append(m.Answer, rr)
		}
		_ = w.WriteMsg(m)
	}
}

func rcodeOnly(rcode int) func(w dns.ResponseWriter, r *dns.Msg) {
	return func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, rcode)
		_ = w.WriteMsg(m)
	}
}

// addrsOf returns the A records of m as addresses.
func addrsOf(m *dns.Msg) []netip.Addr {
	var out []netip.Addr
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.A); ok {
			addr, _ := netip.AddrFromSlice(a.A)
			out = append(out, addr.Unmap())
		}
	}
	return out
}
