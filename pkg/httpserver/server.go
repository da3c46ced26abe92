package httpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
)

// Defaults of Config's zero fields.
const (
	DefaultMaxInFlight       = 16
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 10 * time.Second
	// DefaultWriteTimeout leaves room for /debug/pprof/profile's default
	// 30 s profile (pprof refuses durations beyond the write timeout).
	DefaultWriteTimeout = 60 * time.Second
	DefaultIdleTimeout  = 2 * time.Minute
	maxHeaderBytes      = 64 << 10
)

// Config describes the server. Zero durations and limits take the defaults.
type Config struct {
	Addr          string // TCP listen address, e.g. 127.0.0.1:9750 (port 0: any)
	WebConfigFile string // exporter-toolkit web config (TLS, basic auth); "" for plain HTTP
	// Metrics serves /metrics (metrics.Handler, or promhttp.HandlerFor).
	Metrics http.Handler
	// Ready says whether /readyz answers 200 (nil) or 503 (the reason).
	// Nil means always ready.
	Ready func() error
	// Handlers are mounted by New, as with Mount.
	Handlers map[string]http.Handler

	MaxInFlight       int // concurrent requests; the excess gets 503
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	Logger            *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&c.ReadTimeout, DefaultReadTimeout)
	def(&c.WriteTimeout, DefaultWriteTimeout)
	def(&c.IdleTimeout, DefaultIdleTimeout)
}

// Server is the agent's HTTP server.
type Server struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux

	mu    sync.Mutex
	paths []string // mounted paths, for 404 messages
	srv   *http.Server
	ln    net.Listener
	done  chan struct{} // closed when serving has stopped
}

// New checks cfg (the web config file included) and builds the server's
// routes; Start listens.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if cfg.Addr == "" || cfg.Metrics == nil {
		return nil, errors.New("httpserver: listen address and metrics handler are required")
	}
	if err := web.Validate(cfg.WebConfigFile); err != nil {
		return nil, fmt.Errorf("httpserver: web config file %s: %w", cfg.WebConfigFile, err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux()}
	routes := []struct {
		pattern string
		h       http.Handler
	}{
		{"GET /metrics", cfg.Metrics}, // bounds its own reads of OVS
		{"GET /healthz", http.HandlerFunc(healthz)},
		{"GET /readyz", http.HandlerFunc(s.readyz)},
		{"GET /debug/pprof/", http.HandlerFunc(pprof.Index)},
		{"GET /debug/pprof/cmdline", http.HandlerFunc(pprof.Cmdline)},
		{"GET /debug/pprof/profile", http.HandlerFunc(pprof.Profile)},
		{"GET /debug/pprof/symbol", http.HandlerFunc(pprof.Symbol)},
		{"POST /debug/pprof/symbol", http.HandlerFunc(pprof.Symbol)},
		{"GET /debug/pprof/trace", http.HandlerFunc(pprof.Trace)},
	}
	for _, r := range routes {
		if err := s.Mount(r.pattern, r.h); err != nil {
			return nil, err
		}
	}
	for p, h := range cfg.Handlers {
		if err := s.Mount(p, h); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Mount serves h on pattern (http.ServeMux syntax: "GET /debug/flows",
// "/debug/trace/"). It fails on an invalid pattern or one that conflicts
// with a mounted one. Mount before Start.
func (s *Server) Mount(pattern string, h http.Handler) (err error) {
	if h == nil {
		return fmt.Errorf("httpserver: mount %q: nil handler", pattern)
	}
	defer func() {
		if r := recover(); r != nil { // ServeMux panics on bad or conflicting patterns
			err = fmt.Errorf("httpserver: mount %q: %v", pattern, r)
		}
	}()
	s.mux.Handle(pattern, h)
	path := pattern
	if i := strings.IndexByte(path, ' '); i >= 0 {
		path = strings.TrimSpace(path[i:])
	}
	s.mu.Lock()
	s.paths = append(s.paths, path)
	s.mu.Unlock()
	return nil
}

// Start listens on Config.Addr and serves in the background until ctx ends
// or Close is called.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return errors.New("httpserver: already started")
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("httpserver: %w", err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           limit(s.cfg.MaxInFlight, http.HandlerFunc(s.route)),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.done = make(chan struct{})
	addrs, systemd, file := []string{ln.Addr().String()}, false, s.cfg.WebConfigFile
	flags := &web.FlagConfig{WebListenAddresses: &addrs, WebSystemdSocket: &systemd, WebConfigFile: &file}
	srv, done := s.srv, s.done
	go func() {
		defer close(done)
		if err := web.Serve(ln, srv, flags, s.log); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "addr", addrs[0], "err", err)
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			_ = srv.Close()
		case <-done:
		}
	}()
	return nil
}

// Addr is the address the server listens on ("" before Start).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close stops the server at once and waits until it has stopped serving.
func (s *Server) Close() error {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Close()
	<-done
	return err
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ready")
}
