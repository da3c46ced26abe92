package httpserver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
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
	s, err := New(Config{Addr: "127.0.0.1:0", Metrics: http.NotFoundHandler(), Logger: quietLog()})
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

func TestConcurrencyLimit(t *testing.T) {
	entered, release := make(chan struct{}, 4), make(chan struct{})
	block := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		entered <- struct{}{}
		<-release
		io.WriteString(w, "done")
	})
	s := start(t, Config{MaxInFlight: 2, Handlers: map[string]http.Handler{"GET /block": block}})
	base := "http://" + s.Addr()
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := http.Get(base + "/block"); err == nil {
				codes[i] = resp.StatusCode
				resp.Body.Close()
			}
		}()
	}
	<-entered
	<-entered
	code, retry, body := do(t, "GET", base+"/metrics", "Retry-After")
	if code != 503 || retry != "1" || !strings.Contains(body, "too many concurrent requests (limit 2)") {
		t.Errorf("third request = %d Retry-After=%q %q; want 503 with a clear message", code, retry, body)
	}
	close(release)
	wg.Wait()
	if codes[0] != 200 || codes[1] != 200 {
		t.Errorf("blocked requests got %v, want 200s", codes)
	}
	if code, _, _ := do(t, "GET", base+"/healthz", ""); code != 200 {
		t.Errorf("after the burst /healthz = %d", code)
	}
}

func TestTimeouts(t *testing.T) {
	s := start(t, Config{ReadHeaderTimeout: 200 * time.Millisecond})
	if got := s.srv; got.ReadHeaderTimeout != 200*time.Millisecond || got.ReadTimeout != DefaultReadTimeout ||
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
