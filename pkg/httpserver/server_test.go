package httpserver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// start runs a server on a free loopback port until the test ends.
func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	cfg.Logger = quietLog()
	if cfg.Metrics == nil {
		reg := prometheus.NewRegistry()
		reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "test_things_total", Help: "Things."}))
		cfg.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = s.Close() })
	return s
}

// do sends one request and returns status, a header and the body.
func do(t *testing.T, method, url string, header string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get(header), string(b)
}

func TestRoutes(t *testing.T) {
	var ready error = errors.New("pipeline not in OVS")
	var mu sync.Mutex
	s := start(t, Config{
		Pprof:    true,
		Ready:    func() error { mu.Lock(); defer mu.Unlock(); return ready },
		Handlers: map[string]http.Handler{"GET /debug/flows": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "flows") })},
	})
	// A handler on DefaultServeMux must not be reachable through our server.
	http.DefaultServeMux.HandleFunc("/httpserver-test-default", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "leak") })
	base := "http://" + s.Addr()
	tests := []struct {
		method, path string
		code         int
		header, hval string // a header and a substring of its value
		body         string // substring
	}{
		{"GET", "/metrics", 200, "Content-Type", "text/plain", "test_things_total 0"},
		{"GET", "/healthz", 200, "", "", "ok"},
		{"GET", "/readyz", 503, "", "", "not ready: pipeline not in OVS"},
		{"GET", "/debug/pprof/", 200, "", "", "goroutine"},
		{"GET", "/debug/pprof/goroutine?debug=1", 200, "", "", "goroutine profile"},
		{"GET", "/debug/pprof/cmdline", 200, "", "", ""},
		{"GET", "/debug/flows", 200, "", "", "flows"},
		{"GET", "/nope", 404, "", "", "not found: /nope (this server has /debug/flows, /debug/pprof/"},
		{"GET", "/httpserver-test-default", 404, "", "", "not found"},
		{"POST", "/metrics", 405, "Allow", "GET", "method POST not allowed on /metrics (allowed: GET, HEAD)"},
		{"DELETE", "/debug/flows", 405, "Allow", "GET", "not allowed"},
		{"PUT", "/debug/pprof/heap", 405, "Allow", "GET", "not allowed"},
	}
	for _, tt := range tests {
		code, hval, body := do(t, tt.method, base+tt.path, tt.header)
		if code != tt.code || !strings.Contains(hval, tt.hval) || !strings.Contains(body, tt.body) {
			t.Errorf("%s %s = %d %s=%q %q; want %d, %q in header, %q in body", tt.method, tt.path, code, tt.header, hval, body, tt.code, tt.hval, tt.body)
		}
	}
	mu.Lock()
	ready = nil
	mu.Unlock()
	if code, _, body := do(t, "GET", base+"/readyz", ""); code != 200 || body != "ready\n" {
		t.Errorf("readyz when ready = %d %q", code, body)
	}
}

func TestMountErrors(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", Metrics: http.NotFoundHandler(), Logger: quietLog(), Pprof: true})
	if err != nil {
		t.Fatal(err)
	}
	h := http.NotFoundHandler()
	for _, p := range []string{"GET /metrics", "GET /debug/pprof/", "/a/{b", "GET /x/{y}/{y}", ""} {
		if err := s.Mount(p, h); err == nil {
			t.Errorf("Mount(%q) succeeded, want an error", p)
		}
	}
	if err := s.Mount("GET /debug/x", nil); err == nil {
		t.Error("Mount of a nil handler succeeded")
	}
	if _, err := New(Config{Addr: "127.0.0.1:0", Metrics: http.NotFoundHandler(),
		Handlers: map[string]http.Handler{"GET /healthz": h}}); err == nil {
		t.Error("New with a handler conflicting with /healthz succeeded")
	}
	if _, err := New(Config{Metrics: http.NotFoundHandler()}); err == nil {
		t.Error("New without an address succeeded")
	}
}

// Go's profiles are served only when asked for; off, the path says how to
// turn them on.
func TestPprofOff(t *testing.T) {
	base := "http://" + start(t, Config{}).Addr()
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/profile?seconds=1", "/debug/pprof/heap"} {
		if code, _, body := do(t, "GET", base+path, ""); code != 404 || !strings.Contains(body, "Go profiling is off") ||
			!strings.Contains(body, "--pprof") {
			t.Errorf("GET %s with pprof off = %d %q; want 404 naming --pprof", path, code, body)
		}
	}
}

// blocker is a handler that holds every request until released.
type blocker struct {
	entered chan struct{}
	release chan struct{}
}

func newBlocker() *blocker {
	return &blocker{entered: make(chan struct{}, 16), release: make(chan struct{})}
}

func (b *blocker) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	b.entered <- struct{}{}
	<-b.release
	io.WriteString(w, "done")
}

// hold sends n requests to url in the background and waits until the
// handler holds them all; wait returns their status codes.
func (b *blocker) hold(t *testing.T, url string, n int) (wait func() []int) {
	t.Helper()
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := http.Get(url); err == nil {
				codes[i] = resp.StatusCode
				resp.Body.Close()
			}
		}()
	}
	for range n {
		<-b.entered
	}
	return func() []int { wg.Wait(); return codes }
}

// Each class of path has its own limit: debug requests that fill theirs
// (long profiles, flow dumps) leave health probes and scrapes their own
// slots, and a scrape that fills the metrics limit leaves the probes
// theirs. The excess of a class gets 503 at once, with a clear message.
func TestLimitsPerClass(t *testing.T) {
	debug, metrics := newBlocker(), newBlocker()
	s := start(t, Config{Limits: Limits{Debug: 2, Metrics: 1}, Metrics: metrics,
		Handlers: map[string]http.Handler{"GET /debug/block": debug}})
	base := "http://" + s.Addr()
	waitDebug := debug.hold(t, base+"/debug/block", 2)
	code, retry, body := do(t, "GET", base+"/debug/block", "Retry-After")
	if code != 503 || retry != "1" || !strings.Contains(body, "too many concurrent debug requests (limit 2)") {
		t.Errorf("third debug request = %d Retry-After=%q %q; want 503 with a clear message", code, retry, body)
	}
	if code, _, _ := do(t, "GET", base+"/nope", ""); code != 503 {
		t.Errorf("unknown path while debug is full = %d; want 503 (unknown paths count as debug)", code)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, _, _ := do(t, "GET", base+path, ""); code != 200 {
			t.Errorf("GET %s while debug is full = %d, want 200", path, code)
		}
	}
	waitMetrics := metrics.hold(t, base+"/metrics", 1)
	if code, _, body := do(t, "GET", base+"/metrics", ""); code != 503 || !strings.Contains(body, "metrics requests (limit 1)") {
		t.Errorf("second scrape = %d %q; want 503", code, body)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, _, _ := do(t, "GET", base+path, ""); code != 200 {
			t.Errorf("GET %s while debug and metrics are full = %d, want 200", path, code)
		}
	}
	close(debug.release)
	close(metrics.release)
	if codes := append(waitDebug(), waitMetrics()...); !slices.Equal(codes, []int{200, 200, 200}) {
		t.Errorf("held requests got %v, want 200s", codes)
	}
}

func TestTimeouts(t *testing.T) {
	s := start(t, Config{ReadHeaderTimeout: 200 * time.Millisecond})
	if got := s.main.srv; got.ReadHeaderTimeout != 200*time.Millisecond || got.ReadTimeout != DefaultReadTimeout ||
		got.WriteTimeout != DefaultWriteTimeout || got.IdleTimeout != DefaultIdleTimeout || got.MaxHeaderBytes != maxHeaderBytes {
		t.Errorf("server timeouts %v %v %v %v %d", got.ReadHeaderTimeout, got.ReadTimeout, got.WriteTimeout, got.IdleTimeout, got.MaxHeaderBytes)
	}
	// A client that never finishes its headers is cut off.
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(c)
	if took := time.Since(begin); err != nil || took > 2*time.Second {
		t.Errorf("slow client: read returned %v after %v; want the server to close within ~200ms", err, took)
	}
}

func TestStartTwiceAndBadAddr(t *testing.T) {
	s := start(t, Config{})
	if err := s.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
	s2, err := New(Config{Addr: "256.0.0.1:1", Metrics: http.NotFoundHandler(), Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Start(context.Background()); err == nil {
		t.Error("Start on an invalid address succeeded")
	}
}
