package metrics

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
)

// BenchmarkScrapeFake is one /metrics request (gzip) against a fake switch
// with 10k endpoint ports, their 30k spoof_guard flows and 20k more flows:
// the agent's side of the cost (Open vSwitch's is in bench/scrape_test.go).
// "read" reads the switch in every scrape (no cache); "cached" serves the
// values read by an earlier scrape, as the background reads make it.
func BenchmarkScrapeFake(b *testing.B) {
	const n = 10_000
	ports := make([]fakePort, n)
	flows := make([]fakeFlow, 0, 5*n)
	labels := make(map[string]PortLabels, n)
	for i := range ports {
		name := fmt.Sprintf("d%d", i)
		ports[i] = fakePort{no: uint32(i + 1), name: name, c: [12]uint64{uint64(i), 2, 3, 4}}
		cookie := pipeline.Endpoint{Port: name}.Cookie()
		for p := range 2 {
			flows = append(flows, fakeFlow{table: 1, priority: uint16(200 + p), cookie: cookie, inPort: uint32(i + 1), packets: 9})
		}
		flows = append(flows, fakeFlow{table: 1, priority: 100, cookie: spoofDrop(cookie), inPort: uint32(i + 1), packets: 1, drop: true},
			fakeFlow{table: 2, priority: 200, cookie: cookie, packets: 3}, fakeFlow{table: 5, priority: 200, cookie: cookie, packets: 4})
		labels[name] = PortLabels{Network: "blue", IP: fmt.Sprintf("10.100.%d.%d", i/250, i%250), Container: "ctr-" + name}
	}
	f := newFakeOVS(b, ports, flows)
	c, _ := f.dial(b)
	for _, bc := range []struct {
		name   string
		maxAge time.Duration
	}{{"read", -1}, {"cached", time.Hour}} {
		b.Run(bc.name, func(b *testing.B) {
			h := NewHandler(Sources{Status: testStatus, Loop: NewLoopMetrics(), Logger: quiet,
				OVS: OVSConfig{Switch: func() Switch { return c }, Ports: func() map[string]PortLabels { return labels },
					Timeout: 10 * time.Second, MaxAge: bc.maxAge}})
			defer h.Close()
			req := httptest.NewRequest("GET", "/metrics", nil)
			req.Header.Set("Accept-Encoding", "gzip")
			h.ServeHTTP(&discard{h: http.Header{}}, req) // the first read, for "cached"
			for b.Loop() {
				w := &discard{h: http.Header{}}
				h.ServeHTTP(w, req)
				if w.n < 1_000_000 {
					b.Fatalf("scrape of %d bytes: a collector failed", w.n)
				}
			}
			b.StopTimer()
			if got := flatten(parse(b, exposition(b, h))); len(got) < 9*n {
				b.Fatalf("%d samples, want at least %d", len(got), 9*n)
			}
		})
	}
}

// discard is a ResponseWriter that counts the bytes written.
type discard struct {
	h http.Header
	n int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { d.n += len(p); return io.Discard.Write(p) }
func (d *discard) WriteHeader(int)             {}
