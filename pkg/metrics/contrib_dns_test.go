package metrics

import (
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ofctl-agent/ofctl-agent/pkg/resolver"
)

// resolverFamilies are the resolver's metric families, which the daemon
// registers in Extra (cmd/ofctl-agent): one network on a loopback address,
// a local answer and a forwarded query whose upstream refuses give every
// family a series.
func resolverFamilies(t *testing.T) []*dto.MetricFamily {
	t.Helper()
	gw := netip.MustParseAddr("127.61.0.1")
	pc, err := net.ListenPacket("udp4", gw.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	pc.Close()
	srv, err := resolver.New(resolver.Config{Port: port, Upstreams: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1")},
		Forward: resolver.ForwardConfig{Attempt: 200 * time.Millisecond, Timeout: 500 * time.Millisecond, Rounds: 1},
		Logger:  slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.SetNetwork("blue", gw, netip.MustParsePrefix("127.0.0.0/8")); err != nil {
		t.Fatal(err)
	}
	_ = srv.Names().Set("blue", resolver.Record{Key: "k", Name: "c1", Addr: netip.MustParseAddr("10.100.0.5")})
	srv.Names().SetSynced(true)
	for _, name := range []string{"c1.blue.ofctl.internal.", "www.example."} {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		if _, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, netip.AddrPortFrom(gw, port).String()); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(srv.Metrics())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}
