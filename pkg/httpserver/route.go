package httpserver

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// limit serves at most n requests at a time; the others get 503 at once.
func limit(n int, next http.Handler) http.Handler {
	sem := make(chan struct{}, n)
	msg := fmt.Sprintf("too many concurrent requests (limit %d); retry later", n)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
			next.ServeHTTP(w, r)
		default:
			w.Header().Set("Retry-After", "1")
			http.Error(w, msg, http.StatusServiceUnavailable)
		}
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
