package resolver

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// NetNS opens the listening sockets and the upstream connections in the
// namespace (the agent's --netns-host): a query sent there is answered,
// and a forwarded one reaches an upstream only that namespace can reach.
func TestNetNSSockets(t *testing.T) {
	testbed.Require(t)
	ns := testbed.NewNetNS(t, "dnsns")
	var up *upstream
	if err := testbed.InNetNS(ns, func() error { up = startUpstream(t, "127.0.0.1", answerA("192.0.2.7")); return nil }); err != nil {
		t.Fatal(err)
	}
	in := NetNS{Path: ns.Path()}
	s, err := New(Config{Port: 53, Upstreams: []netip.AddrPort{up.addr}, Listen: in.Listen,
		Forward: ForwardConfig{Dial: in.Dial}, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	lo := netip.MustParseAddr("127.0.0.1")
	if err := s.SetNetwork("lo", lo, netip.MustParsePrefix("127.0.0.0/8")); err != nil {
		t.Fatal(err)
	}
	if err := s.Names().Set("lo", Record{Key: "k", Name: "c1", Addr: netip.MustParseAddr("127.0.0.9")}); err != nil {
		t.Fatal(err)
	}
	s.Names().SetSynced(true)
	for _, tt := range []struct {
		name, want string
		proto      string
	}{
		{"c1.lo.ofctl.internal.", "127.0.0.9", "udp"},
		{"c1.lo.ofctl.internal.", "127.0.0.9", "tcp"},
		{"www.example.", "192.0.2.7", "udp"}, // forwarded from the namespace
	} {
		var r *dns.Msg
		err := testbed.InNetNS(ns, func() (err error) {
			c := &dns.Client{Net: tt.proto}
			r, _, err = c.Exchange(question(tt.name, dns.TypeA), "127.0.0.1:53")
			return err
		})
		if got := addrsOf(r); err != nil || len(got) != 1 || got[0].String() != tt.want {
			t.Errorf("%s over %s in the namespace: %v %v, want %s", tt.name, tt.proto, got, err, tt.want)
		}
	}
	if up.count() != 1 {
		t.Errorf("upstream got %d queries, want 1", up.count())
	}
}
