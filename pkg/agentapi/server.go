package agentapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
)

// Backend answers the API: the agent's allocator and state. Its errors wrap
// the sentinel errors of this package (ErrUnknownNetwork, ...) so that
// clients get the right code.
type Backend interface {
	Status() Status
	Network(name string) (Network, error)
	Allocate(ctx context.Context, r AllocateRequest) (Allocation, error)
	Release(ctx context.Context, r ReleaseRequest) error
	// Allocations lists the allocations of network ("": all) whose owner
	// starts with ownerPrefix ("": all).
	Allocations(ctx context.Context, network, ownerPrefix string) ([]Allocated, error)
}

// maxBody bounds a request body: the largest valid one is a few hundred bytes.
const maxBody = 16 << 10

// HandlerOptions configure Handler.
type HandlerOptions struct {
	Logger *slog.Logger
	// OnInvalid, when set, is called for each malformed request instead of
	// the handler's log line (the agent logs and counts it as an invalid
	// input).
	OnInvalid func(err error)
	// OnRequest, when set, is called once per request with the call
	// ("status", "network", "allocate", "release", "list" or "unknown") and the
	// code of its error ("" when it succeeded): the agent counts them.
	OnRequest func(call string, code Code)
}

// Handler serves the API from b.
func Handler(b Backend, o HandlerOptions) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	h := &handler{b: b, o: o}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", h.serve("status", h.status))
	mux.HandleFunc("GET /v1/networks/{name}", h.serve("network", h.network))
	mux.HandleFunc("POST /v1/addresses", h.serve("allocate", h.allocate))
	mux.HandleFunc("DELETE /v1/addresses", h.serve("release", h.release))
	mux.HandleFunc("GET /v1/addresses", h.serve("list", h.list))
	mux.HandleFunc("/", h.serve("unknown", func(r *http.Request) (any, error) {
		return nil, fmt.Errorf("%w: no such call %s %s", ErrInvalid, r.Method, r.URL.Path)
	}))
	return mux
}

type handler struct {
	b Backend
	o HandlerOptions
}

// serve answers with what f returns: its value as JSON (nil: 204), or its
// error. The request is counted as call before the answer goes out.
func (h *handler) serve(call string, f func(r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := f(r)
		var code Code
		if err != nil {
			code = h.report(err)
		}
		if h.o.OnRequest != nil {
			h.o.OnRequest(call, code)
		}
		switch {
		case err != nil:
			status, _ := lookup(code)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(errorBody{Code: code, Error: err.Error()})
		case v == nil:
			w.WriteHeader(http.StatusNoContent)
		default:
			reply(w, v)
		}
	}
}

func (h *handler) status(*http.Request) (any, error) { return h.b.Status(), nil }

func (h *handler) network(r *http.Request) (any, error) {
	n, err := h.b.Network(r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	return n, nil
}

func (h *handler) allocate(r *http.Request) (any, error) {
	var req AllocateRequest
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	if req.Network == "" || req.Owner == "" || req.IP.IsValid() && !req.IP.Is4() {
		return nil, fmt.Errorf("%w: allocate needs a network, an owner and, if any, an IPv4 address", ErrInvalid)
	}
	a, err := h.b.Allocate(r.Context(), req)
	if err != nil {
		return nil, err
	}
	return a, nil
}

func (h *handler) release(r *http.Request) (any, error) {
	var req ReleaseRequest
	if err := h.decode(r, &req); err != nil {
		return nil, err
	}
	if req.Network == "" || req.Owner == "" || req.IP.IsValid() && !req.IP.Is4() {
		return nil, fmt.Errorf("%w: release needs a network, an owner and, if any, an IPv4 address", ErrInvalid)
	}
	return nil, h.b.Release(r.Context(), req)
}

// listParams are the filters GET /v1/addresses takes.
var listParams = []string{"network", "owner-prefix"}

func (h *handler) list(r *http.Request) (any, error) {
	q := r.URL.Query()
	for k, v := range q {
		if !slices.Contains(listParams, k) || len(v) != 1 {
			return nil, fmt.Errorf("%w: list takes network and owner-prefix, each at most once (got %q)", ErrInvalid, k)
		}
	}
	l, err := h.b.Allocations(r.Context(), q.Get("network"), q.Get("owner-prefix"))
	if err != nil {
		return nil, err
	}
	if l == nil {
		l = []Allocated{} // [] rather than null, and not 204
	}
	return l, nil
}

// decode reads one JSON object into v; unknown fields and trailing data are
// errors.
func (h *handler) decode(r *http.Request, v any) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	switch {
	case err != nil:
		return fmt.Errorf("%w: body: %w", ErrInvalid, err)
	case len(data) > maxBody:
		return fmt.Errorf("%w: body larger than %d bytes", ErrInvalid, maxBody)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: body: %w", ErrInvalid, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: body: data after the JSON object", ErrInvalid)
	}
	return nil
}

// report logs err (or hands it to OnInvalid) and returns its code.
func (h *handler) report(err error) Code {
	code := CodeOf(err)
	status, _ := lookup(code)
	switch {
	case code == CodeInvalid && h.o.OnInvalid != nil:
		h.o.OnInvalid(err)
	case code == CodeInvalid:
		h.o.Logger.Warn("agent API: invalid request", "err", err)
	case status >= 500 && !errors.Is(err, ErrNotReady):
		h.o.Logger.Error("agent API: request failed", "err", err)
	}
	return code
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
