package httpserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
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
	DefaultHealthLimit       = 8
	DefaultMetricsLimit      = 4
	DefaultDebugLimit        = 4
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 10 * time.Second
	// DefaultWriteTimeout leaves room for /debug/pprof/profile's default
	// 30 s profile (pprof refuses durations beyond the write timeout).
	DefaultWriteTimeout = 60 * time.Second
	DefaultIdleTimeout  = 2 * time.Minute
	maxHeaderBytes      = 64 << 10
)

// Limits bound the requests served at once per class of path (ClassHealth,
// ClassMetrics, ClassDebug); the excess gets 503 with Retry-After at once.
// Zero takes the default.
type Limits struct {
	Health, Metrics, Debug int
}

// Config describes the server. Zero durations and limits take the defaults.
type Config struct {
	Addr          string // TCP listen address, e.g. 127.0.0.1:9750 (port 0: any)
	WebConfigFile string // exporter-toolkit web config (TLS, basic auth); "" for plain HTTP
	// HealthAddr, if set, is a second listener serving /healthz and /readyz
	// alone, in plain HTTP without authentication, for probes that cannot
	// present credentials; the web config does not apply to it.
	HealthAddr string
	// Pprof serves Go's profiles under /debug/pprof/. Off, that path
	// answers 404 saying so.
	Pprof bool
	// Metrics serves /metrics (metrics.Handler, or promhttp.HandlerFor).
	Metrics http.Handler
	// Ready says whether /readyz answers 200 (nil) or 503 (the reason).
	// Nil means always ready.
	Ready func() error
	// Handlers are mounted by New, as with Mount.
	Handlers map[string]http.Handler

	Limits            Limits
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
	lim := func(n *int, v int) {
		if *n <= 0 {
			*n = v
		}
	}
	lim(&c.Limits.Health, DefaultHealthLimit)
	lim(&c.Limits.Metrics, DefaultMetricsLimit)
	lim(&c.Limits.Debug, DefaultDebugLimit)
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

	mu     sync.Mutex
	paths  []string // mounted paths, for 404 messages
	main   *serving
	health *serving // on HealthAddr, or nil
}

// serving is one listener and its http.Server.
type serving struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{} // closed when serving has stopped
}

type route struct {
	pattern string
	h       http.Handler
}

// New checks cfg (the web config file included) and builds the server's
// routes; Start listens.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if cfg.Addr == "" || cfg.Metrics == nil {
		return nil, errors.New("httpserver: listen address and metrics handler are required")
	}
	if err := web.Validate(cfg.WebConfigFile); err != nil {
		if pe := (*fs.PathError)(nil); errors.As(err, &pe) { // it names the file
			return nil, fmt.Errorf("httpserver: web config file: %w", err)
		}
		return nil, fmt.Errorf("httpserver: web config file %s: %w", cfg.WebConfigFile, err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux()}
	routes := append([]route{
		{"GET /metrics", cfg.Metrics}, // bounds its own reads of OVS
		{"GET /healthz", http.HandlerFunc(healthz)},
		{"GET /readyz", http.HandlerFunc(s.readyz)},
	}, pprofRoutes(cfg.Pprof)...)
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

// pprofRoutes are Go's profiles, or when off a 404 that says so.
func pprofRoutes(on bool) []route {
	if !on {
		return []route{{"/debug/pprof/", http.HandlerFunc(pprofOff)}}
	}
	return []route{
		{"GET /debug/pprof/", http.HandlerFunc(pprof.Index)},
		{"GET /debug/pprof/cmdline", http.HandlerFunc(pprof.Cmdline)},
		{"GET /debug/pprof/profile", http.HandlerFunc(pprof.Profile)},
		{"GET /debug/pprof/symbol", http.HandlerFunc(pprof.Symbol)},
		{"POST /debug/pprof/symbol", http.HandlerFunc(pprof.Symbol)},
		{"GET /debug/pprof/trace", http.HandlerFunc(pprof.Trace)},
	}
}

func pprofOff(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, "not found: Go profiling is off on this agent (start it with --pprof to serve /debug/pprof/)", http.StatusNotFound)
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

// Start listens on Config.Addr (and HealthAddr) and serves in the
// background until ctx ends or Close is called.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.main != nil {
		return errors.New("httpserver: already started")
	}
	limits := map[string]*limiter{
		ClassHealth:  newLimiter(ClassHealth, s.cfg.Limits.Health),
		ClassMetrics: newLimiter(ClassMetrics, s.cfg.Limits.Metrics),
		ClassDebug:   newLimiter(ClassDebug, s.cfg.Limits.Debug),
	}
	main, err := s.listen(s.cfg.Addr, limited(limits, http.HandlerFunc(s.route)))
	if err != nil {
		return err
	}
	if s.cfg.HealthAddr != "" {
		if s.health, err = s.listen(s.cfg.HealthAddr, s.healthHandler()); err != nil {
			_ = main.ln.Close()
			return err
		}
		go s.health.serve(ctx, s.log, func(ln net.Listener, srv *http.Server) error { return srv.Serve(ln) })
	}
	s.main = main
	addrs, systemd, file := []string{main.ln.Addr().String()}, false, s.cfg.WebConfigFile
	flags := &web.FlagConfig{WebListenAddresses: &addrs, WebSystemdSocket: &systemd, WebConfigFile: &file}
	go main.serve(ctx, s.log, func(ln net.Listener, srv *http.Server) error { return web.Serve(ln, srv, flags, s.log) })
	return nil
}

// healthHandler serves /healthz and /readyz alone, with a limiter of its
// own (the main listener's probes do not take its slots).
func (s *Server) healthHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	lim := newLimiter(ClassHealth, s.cfg.Limits.Health)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { lim.serve(w, r, mux) })
}

// listen opens addr for h.
func (s *Server) listen(addr string, h http.Handler) (*serving, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("httpserver: %w", err)
	}
	return &serving{ln: ln, done: make(chan struct{}), srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}}, nil
}

// serve runs serveFn until ctx ends or the server is closed.
func (sv *serving) serve(ctx context.Context, log *slog.Logger, serveFn func(net.Listener, *http.Server) error) {
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = sv.srv.Close()
		case <-stopped:
		}
	}()
	defer close(sv.done)
	defer close(stopped)
	if err := serveFn(sv.ln, sv.srv); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("http server stopped", "addr", sv.ln.Addr().String(), "err", err)
	}
}

// close stops the server at once and waits until it has stopped serving.
func (sv *serving) close() error {
	if sv == nil {
		return nil
	}
	err := sv.srv.Close()
	<-sv.done
	return err
}

func (sv *serving) addr() string {
	if sv == nil {
		return ""
	}
	return sv.ln.Addr().String()
}

// Addr is the address the server listens on ("" before Start).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.main.addr()
}

// HealthAddr is the address of the health listener ("" without one, or
// before Start).
func (s *Server) HealthAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.health.addr()
}

// Close stops the server at once and waits until it has stopped serving.
func (s *Server) Close() error {
	s.mu.Lock()
	main, health := s.main, s.health
	s.mu.Unlock()
	return errors.Join(main.close(), health.close())
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
