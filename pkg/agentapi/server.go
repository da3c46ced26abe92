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
)

// Backend answers the API: the agent's allocator and state. Its errors wrap
// the sentinel errors of this package (ErrUnknownNetwork, ...) so that
// clients get the right code.
type Backend interface {
	Status() Status
	Network(name string) (Network, error)
	Allocate(ctx context.Context, r AllocateRequest) (Allocation, error)
	Release(ctx context.Context, r ReleaseRequest) error
}

// maxBody bounds a request body: the largest valid one is a few hundred bytes.
const maxBody = 16 << 10

// HandlerOptions configure Handler.
type HandlerOptions struct {
	Logger *slog.Logger
	// OnInvalid, when set, is called for each malformed request (the agent
	// logs and counts it as an invalid input).
	OnInvalid func(err error)
}

// Handler serves the API from b.
func Handler(b Backend, o HandlerOptions) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	h := &handler{b: b, o: o}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", h.status)
	mux.HandleFunc("GET /v1/networks/{name}", h.network)
	mux.HandleFunc("POST /v1/addresses", h.allocate)
	mux.HandleFunc("DELETE /v1/addresses", h.release)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, fmt.Errorf("%w: no such call %s %s", ErrInvalid, r.Method, r.URL.Path))
	})
	return mux
}

type handler struct {
	b Backend
	o HandlerOptions
}

func (h *handler) status(w http.ResponseWriter, _ *http.Request) { reply(w, h.b.Status()) }

func (h *handler) network(w http.ResponseWriter, r *http.Request) {
	n, err := h.b.Network(r.PathValue("name"))
	if err != nil {
		h.fail(w, err)
		return
	}
	reply(w, n)
}

func (h *handler) allocate(w http.ResponseWriter, r *http.Request) {
	var req AllocateRequest
	if err := h.decode(r, &req); err != nil {
		h.fail(w, err)
		return
	}
	if req.Network == "" || req.Owner == "" || req.IP.IsValid() && !req.IP.Is4() {
		h.fail(w, fmt.Errorf("%w: allocate needs a network, an owner and, if any, an IPv4 address", ErrInvalid))
		return
	}
	a, err := h.b.Allocate(r.Context(), req)
	if err != nil {
		h.fail(w, err)
		return
	}
	reply(w, a)
}

func (h *handler) release(w http.ResponseWriter, r *http.Request) {
	var req ReleaseRequest
	if err := h.decode(r, &req); err != nil {
		h.fail(w, err)
		return
	}
	if req.Network == "" || req.Owner == "" || !req.IP.Is4() {
		h.fail(w, fmt.Errorf("%w: release needs a network, an IPv4 address and an owner", ErrInvalid))
		return
	}
	if err := h.b.Release(r.Context(), req); err != nil {
		h.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
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

func (h *handler) fail(w http.ResponseWriter, err error) {
	code := CodeOf(err)
	status, _ := lookup(code)
	switch {
	case code == CodeInvalid:
		h.o.Logger.Warn("agent API: invalid request", "err", err)
		if h.o.OnInvalid != nil {
			h.o.OnInvalid(err)
		}
	case status >= 500 && !errors.Is(err, ErrNotReady):
		h.o.Logger.Error("agent API: request failed", "err", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorBody{Code: code, Error: err.Error()})
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
