package debugapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/agent"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
)

// revSource is a Revisioned source whose flows the test swaps.
type revSource struct {
	fakeSource
	rev   *uint64
	owned *[]agent.Owned
	calls *int // Desired calls
}

func (r revSource) DesiredRevision() uint64 { return *r.rev }
func (r revSource) Desired() []agent.Owned  { *r.calls++; return *r.owned }

// The trace model is built once per revision of the desired flows, and
// again when the revision changes.
func TestTraceModelPerRevision(t *testing.T) {
	base := refSource()
	rev, calls := uint64(1), 0
	owned := base.owned
	src := revSource{fakeSource: base, rev: &rev, owned: &owned, calls: &calls}
	s := newServer(src, Options{Logger: slog.New(slog.DiscardHandler)})
	rules := func(m *Model) int {
		n := 0
		for _, rs := range m.tables {
			n += len(rs)
		}
		return n
	}
	first := s.flowModel()
	if s.flowModel() != first || calls != 1 {
		t.Fatalf("same revision: model rebuilt (%d Desired calls)", calls)
	}
	if want := len(allFlows(base.owned)); rules(first) != want {
		t.Fatalf("model has %d rules, want %d", rules(first), want)
	}
	owned = base.owned[:1] // the fixed flows alone
	rev++
	second := s.flowModel()
	if second == first || calls != 2 || rules(second) != len(base.owned[0].Flows) {
		t.Fatalf("new revision: %d rules (%d Desired calls), want %d", rules(second), calls, len(base.owned[0].Flows))
	}
	// A source without revisions gets a model per request.
	plain := newServer(base, Options{Logger: slog.New(slog.DiscardHandler)})
	if plain.flowModel() == plain.flowModel() {
		t.Error("a source without revisions shared a model")
	}
}

// scaledSource is the reference state plus hosts x per remote endpoints
// in network blue (etcd mode at scale).
func scaledSource(hosts, per int) fakeSource {
	s := pipeline.Reference()
	for h := range hosts {
		name := fmt.Sprintf("h%04d", h)
		s.Hosts = append(s.Hosts, pipeline.RemoteHost{Name: name, TunnelIP: netip.AddrFrom4([4]byte{172, 16, byte(h >> 8), byte(h)})})
		for i := range per {
			n := h*per + i
			s.RemoteEndpoints = append(s.RemoteEndpoints, pipeline.RemoteEndpoint{Network: "blue",
				IP:  netip.AddrFrom4([4]byte{10, 1, 128 + byte(n>>16), byte(n >> 8)}).Next().Next(),
				MAC: net.HardwareAddr{2, 0xee, byte(n >> 16), byte(n >> 8), byte(n), 1}, Host: name})
		}
	}
	src := refSource()
	src.owned, src.state = owners(s), s
	return src
}

// BenchmarkTraceRequest: one /debug/trace request with 1,000 remote hosts x
// 100 endpoints in the desired flows (OVS's side stubbed out), building
// the flows' model per request (a source without revisions, as before) or
// once per revision (the agent).
func BenchmarkTraceRequest(b *testing.B) {
	base := scaledSource(1000, 100)
	rev, calls := uint64(1), 0
	owned := base.owned
	for _, bc := range []struct {
		name string
		src  Source
	}{
		{"per-request", base},
		{"per-revision", revSource{fakeSource: base, rev: &rev, owned: &owned, calls: &calls}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := newServer(bc.src, Options{Logger: slog.New(slog.DiscardHandler)})
			s.trace = func(context.Context, string, string) (string, error) { return "", errors.New("not measured") }
			b.ReportMetric(float64(len(allFlows(owned))), "flows")
			s.flowModel() // a revision's first request builds it, as per request
			b.ResetTimer()
			for range b.N {
				rec := httptest.NewRecorder()
				s.serveTrace(rec, httptest.NewRequest(http.MethodGet, "/debug/trace?in_port=vblue-a&icmp&nw_dst=10.1.2.3", nil))
				if rec.Code != http.StatusOK {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
