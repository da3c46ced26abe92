package resolver

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// loadNames gives blue two "web" endpoints and a "db", red its own "web".
func loadNames(t testing.TB, s *Server) {
	t.Helper()
	for _, r := range []struct {
		network string
		rec     Record
	}{
		{"blue", Record{"b1", "web", ip("127.10.0.10")}},
		{"blue", Record{"b2", "web", ip("127.10.0.11")}},
		{"blue", Record{"b3", "DB", ip("127.10.0.12")}},
		{"red", Record{"r1", "web", ip("127.20.0.10")}},
		{"red", Record{"r2", "cache", ip("127.20.0.11")}},
	} {
		if err := s.Names().Set(r.network, r.rec); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAnswers(t *testing.T) {
	up := startUpstream(t, "127.0.0.53", answerA("192.0.2.80"))
	s := newTestServer(t, Config{Upstreams: []netip.AddrPort{up.addr}})
	loadNames(t, s)
	tests := []struct {
		name    string
		gw, src netip.Addr
		q       string
		qtype   uint16
		rcode   int
		answer  []string // records' text after the owner name and TTL, sorted
		soa     bool     // an SOA in the authority section
		aa      bool
	}{
		{"bare name, two endpoints", blueGW, blueC, "web.", dns.TypeA, dns.RcodeSuccess, []string{"A 127.10.0.10", "A 127.10.0.11"}, false, true},
		{"qualified", blueGW, blueC, "web.blue.ofctl.internal.", dns.TypeA, dns.RcodeSuccess, []string{"A 127.10.0.10", "A 127.10.0.11"}, false, true},
		{"case-insensitive", blueGW, blueC, "db.BLUE.ofctl.Internal.", dns.TypeA, dns.RcodeSuccess, []string{"A 127.10.0.12"}, false, true},
		{"the same name in red is red's", redGW, redC, "web.", dns.TypeA, dns.RcodeSuccess, []string{"A 127.20.0.10"}, false, true},
		{"AAAA of a name: NODATA", blueGW, blueC, "web.blue.ofctl.internal.", dns.TypeAAAA, dns.RcodeSuccess, nil, true, true},
		{"ANY: the addresses", blueGW, blueC, "db.", dns.TypeANY, dns.RcodeSuccess, []string{"A 127.10.0.12"}, false, true},
		{"unknown bare name", blueGW, blueC, "nope.", dns.TypeA, dns.RcodeNameError, nil, false, true},
		{"unknown qualified name", blueGW, blueC, "nope.blue.ofctl.internal.", dns.TypeA, dns.RcodeNameError, nil, true, true},
		{"red's name asked at blue", blueGW, blueC, "cache.", dns.TypeA, dns.RcodeNameError, nil, false, true},
		{"red's qualified name asked at blue", blueGW, blueC, "cache.red.ofctl.internal.", dns.TypeA, dns.RcodeNameError, nil, true, true},
		{"deeper name in the zone", blueGW, blueC, "x.web.blue.ofctl.internal.", dns.TypeA, dns.RcodeNameError, nil, true, true},
		{"the zone itself", blueGW, blueC, "blue.ofctl.internal.", dns.TypeA, dns.RcodeSuccess, nil, true, true},
		{"the domain's SOA", blueGW, blueC, "ofctl.internal.", dns.TypeSOA, dns.RcodeSuccess, []string{"SOA ns.ofctl.internal. hostmaster.ofctl.internal. 1 3600 600 86400 5"}, false, true},
		{"PTR", blueGW, blueC, "12.0.10.127.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"PTR db.blue.ofctl.internal."}, false, true},
		{"PTR of an unused address of the subnet", blueGW, blueC, "99.0.10.127.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, nil, false, true},
		{"PTR of red's address asked at blue: forwarded", blueGW, blueC, "10.0.20.127.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, nil, false, false},
		{"outside name: forwarded", blueGW, blueC, "www.example.org.", dns.TypeA, dns.RcodeSuccess, []string{"A 192.0.2.80"}, false, false},
		{"red client at blue's address", blueGW, redC, "web.", dns.TypeA, dns.RcodeRefused, nil, false, false},
		{"red client at blue's address, outside name", blueGW, redC, "www.example.org.", dns.TypeA, dns.RcodeRefused, nil, false, false},
		{"zone transfer", blueGW, blueC, "blue.ofctl.internal.", dns.TypeAXFR, dns.RcodeNotImplemented, nil, false, false},
	}
	for _, proto := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			t.Run(proto+"/"+tt.name, func(t *testing.T) {
				r := ask(t, s, tt.gw, tt.src, proto, question(tt.q, tt.qtype))
				var got []string
				for _, rr := range r.Answer {
					if rr.Header().Name != tt.q {
						t.Errorf("owner %q, want the name as asked %q", rr.Header().Name, tt.q)
					}
					f := strings.Fields(rr.String())
					got = append(got, strings.Join(f[3:], " "))
				}
				slices.Sort(got)
				hasSOA := len(r.Ns) == 1 && r.Ns[0].Header().Rrtype == dns.TypeSOA
				if r.Rcode != tt.rcode || !slices.Equal(got, tt.answer) || hasSOA != tt.soa || r.Authoritative != tt.aa {
					t.Errorf("got %s %v soa=%v aa=%v; want %s %v soa=%v aa=%v\n%v", dns.RcodeToString[r.Rcode], got, hasSOA,
						r.Authoritative, dns.RcodeToString[tt.rcode], tt.answer, tt.soa, tt.aa, r)
				}
				if !r.RecursionAvailable {
					t.Error("RA not set")
				}
			})
		}
	}
	// Forwarded: the outside name and the foreign PTR, over UDP and TCP.
	if n := up.count(); n != 4 {
		t.Errorf("upstream got %d queries, want 4 (the refused ones are never forwarded)", n)
	}
	if got := s.metricsFor("blue", "answers", "refused"); got != 4 {
		t.Errorf("blue refused %v, want 4", got)
	}
}

// metricsFor reads one counter of a network (test helper over the atomics).
func (s *Server) metricsFor(network, what, label string) uint64 {
	st := s.metrics.network(network)
	switch what {
	case "answers":
		for k := range numKinds {
			if kindNames[k] == label {
				return (st.answers[k].Load())
			}
		}
	case "drops":
		for d := range numDrops {
			if dropNames[d] == label {
				return (st.drops[d].Load())
			}
		}
	case "queries":
		return (st.queries.Load())
	}
	panic("no metric " + what + " " + label)
}

func TestRotationOverTheWire(t *testing.T) {
	s := newTestServer(t, Config{})
	loadNames(t, s)
	first := map[netip.Addr]int{}
	for range 10 {
		r := ask(t, s, blueGW, blueC, "udp", question("web.", dns.TypeA))
		first[addrsOf(r)[0]]++
	}
	if first[ip("127.10.0.10")] != 5 || first[ip("127.10.0.11")] != 5 {
		t.Errorf("first address over 10 queries: %v, want 5 each", first)
	}
}

func TestNotSyncedIsServfail(t *testing.T) {
	s := newTestServer(t, Config{})
	loadNames(t, s)
	s.Names().SetSynced(false)
	if r := ask(t, s, blueGW, blueC, "udp", question("nope.", dns.TypeA)); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("unknown name before sync: %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	if r := ask(t, s, blueGW, blueC, "udp", question("web.", dns.TypeA)); len(addrsOf(r)) != 2 {
		t.Errorf("known name before sync: %v, want its 2 addresses", r)
	}
}

func TestSetNetwork(t *testing.T) {
	s := newTestServer(t, Config{})
	loadNames(t, s)
	if err := s.SetNetwork("green", blueGW, netip.MustParsePrefix("127.10.0.0/24")); err == nil || !strings.Contains(err.Error(), "already serves network blue") {
		t.Errorf("second network on blue's gateway: %v", err)
	}
	for _, bad := range []struct {
		gw  string
		net string
	}{{"127.30.0.1", "127.31.0.0/16"}, {"fd00::1", "fd00::/64"}} {
		if err := s.SetNetwork("green", ip(bad.gw), netip.MustParsePrefix(bad.net)); err == nil {
			t.Errorf("SetNetwork(%s, %s) accepted", bad.gw, bad.net)
		}
	}
	// A narrower subnet on the same gateway applies at once: blueC is outside 127.10.1.0/24.
	if err := s.SetNetwork("blue", blueGW, netip.MustParsePrefix("127.10.0.0/24")); err != nil {
		t.Fatal(err)
	}
	if r := ask(t, s, blueGW, ip("127.10.1.7"), "udp", question("web.", dns.TypeA)); r.Rcode != dns.RcodeRefused {
		t.Errorf("source outside the new subnet: %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
	// Moving the gateway: the old address stops answering, the new one answers.
	newGW := ip("127.10.0.2")
	if err := s.SetNetwork("blue", newGW, blueNet); err != nil {
		t.Fatal(err)
	}
	if r := ask(t, s, newGW, blueC, "udp", question("web.", dns.TypeA)); len(addrsOf(r)) != 2 {
		t.Errorf("at the new gateway: %v", r)
	}
	if _, err := exchangeFrom(s, blueGW, blueC, "tcp", question("web.", dns.TypeA)); err == nil {
		t.Error("the old gateway still answers over TCP")
	}
	s.RemoveNetwork("blue")
	if _, err := exchangeFrom(s, newGW, blueC, "tcp", question("web.", dns.TypeA)); err == nil {
		t.Error("a removed network still answers")
	}
	got := s.Networks()
	if len(got) != 1 || got[0].Network != "red" || got[0].Zone != "red.ofctl.internal." || len(got[0].Names) != 2 {
		t.Errorf("Networks() = %+v", got)
	}
}

func TestNetworkNameNotALabel(t *testing.T) {
	s := newTestServer(t, Config{Domain: "Cluster.Example."})
	if s.Domain() != "cluster.example." {
		t.Errorf("domain %q", s.Domain())
	}
	gw := ip("127.40.0.1")
	if err := s.SetNetwork("my_net", gw, netip.MustParsePrefix("127.40.0.0/16")); err != nil {
		t.Fatal(err)
	}
	_ = s.Names().Set("my_net", Record{"e", "web", ip("127.40.0.5")})
	src := ip("127.40.0.9")
	if r := ask(t, s, gw, src, "udp", question("web.", dns.TypeA)); len(addrsOf(r)) != 1 {
		t.Errorf("bare name in my_net: %v", r)
	}
	if r := ask(t, s, gw, src, "udp", question("12.0.40.127.in-addr.arpa.", dns.TypePTR)); r.Rcode != dns.RcodeNameError {
		t.Errorf("PTR miss: %v", r)
	}
	_ = s.Names().Set("my_net", Record{"f", "db", ip("127.40.0.12")})
	if r := ask(t, s, gw, src, "udp", question("12.0.40.127.in-addr.arpa.", dns.TypePTR)); len(r.Answer) != 1 || r.Answer[0].(*dns.PTR).Ptr != "db." {
		t.Errorf("PTR in a network without zone: %v, want db.", r)
	}
	for _, d := range []string{"bad_domain", "a..b", strings.Repeat("abcdefgh.", 25) + "x"} {
		if _, err := New(Config{Domain: d, Logger: quiet(), Upstreams: []netip.AddrPort{}}); err == nil {
			t.Errorf("domain %q accepted", d)
		}
	}
}
