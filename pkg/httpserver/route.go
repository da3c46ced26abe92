package httpserver

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Classes of paths, each with its own limit of concurrent requests
// (Limits): long debug requests (a 30 s profile, a dump of every flow)
// never take the slots of health probes or scrapes.
const (
	ClassHealth  = "health"  // /healthz, /readyz
	ClassMetrics = "metrics" // /metrics
	ClassDebug   = "debug"   // everything else: /debug/..., unknown paths
)

// classOf returns the class of a request path.
func classOf(path string) string {
	switch path {
	case "/healthz", "/readyz":
		return ClassHealth
	case "/metrics":
		return ClassMetrics
	}
	return ClassDebug
}

// limiter serves at most cap(sem) requests at a time; the others get 503
// at once.
type limiter struct {
	sem chan struct{}
	msg string
}

func newLimiter(class string, n int) *limiter {
	return &limiter{sem: make(chan struct{}, n),
		msg: fmt.Sprintf("too many concurrent %s requests (limit %d); retry later", class, n)}
}

func (l *limiter) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	select {
	case l.sem <- struct{}{}:
		defer func() { <-l.sem }()
		next.ServeHTTP(w, r)
	default:
		w.Header().Set("Retry-After", "1")
		http.Error(w, l.msg, http.StatusServiceUnavailable)
	}
}

// limited serves next with the limiter of each request's class.
func limited(limits map[string]*limiter, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limits[classOf(r.URL.Path)].serve(w, r, next)
	})
}

// route serves r with the mux. When no pattern matches, the mux's terse
// 404 or 405 is replaced by a message naming what exists.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.mux.Handler(r); pattern != "" {
		s.mux.ServeHTTP(w, r)
		return
	}
	s.mux.ServeHTTP(&explainer{ResponseWriter: w, r: r, paths: s.pathList()}, r)
}

func (s *Server) pathList() string {
	s.mu.Lock()
	p := slices.Clone(s.paths)
	s.mu.Unlock()
	slices.Sort(p)
	return strings.Join(slices.Compact(p), ", ")
}

// explainer rewrites the body of the mux's own 404 and 405 answers.
type explainer struct {
	http.ResponseWriter
	r        *http.Request
	paths    string
	replaced bool
}

func (e *explainer) WriteHeader(code int) {
	var msg string
	switch code {
	case http.StatusNotFound:
		msg = fmt.Sprintf("not found: %s (this server has %s)", e.r.URL.Path, e.paths)
	case http.StatusMethodNotAllowed:
		msg = fmt.Sprintf("method %s not allowed on %s (allowed: %s)", e.r.Method, e.r.URL.Path, e.Header().Get("Allow"))
	default:
		e.ResponseWriter.WriteHeader(code)
		return
	}
	e.replaced = true
	http.Error(e.ResponseWriter, msg, code)
}

func (e *explainer) Write(b []byte) (int, error) {
	if e.replaced {
		return len(b), nil
	}
	return e.ResponseWriter.Write(b)
}
