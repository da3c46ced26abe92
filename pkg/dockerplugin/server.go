package dockerplugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/unixsock"
)

// Defaults of Config's zero fields.
const (
	// DefaultSocket is where dockerd discovers the plugin "ofctl-agent".
	DefaultSocket = "/run/docker/plugins/ofctl-agent.sock"
	// DefaultStateFile keeps the Docker networks' bindings.
	DefaultStateFile = "/var/lib/ofctl-agent/docker-networks.json"
	// DefaultJoinTimeout bounds Join: dockerd waits for a plugin without
	// any limit (a container start hung for 300 s on a plugin that did not
	// answer), so the plugin must give up itself.
	DefaultJoinTimeout = 10 * time.Second
	// DefaultCallTimeout bounds every other backend call.
	DefaultCallTimeout = 30 * time.Second
)

// Config describes the plugin.
type Config struct {
	Socket    string // unix socket to listen on; DefaultSocket if empty
	StateFile string // Docker network bindings; "" keeps them in memory (tests)

	// View returns the cluster view in force (false before the first).
	View func() (cluster.View, bool)
	// Addresses and Endpoints are the agent's side (see backend.go).
	Addresses Addresses
	Endpoints Endpoints

	JoinTimeout time.Duration
	CallTimeout time.Duration
	Logger      *slog.Logger
	// OnInvalid, if set, is told of every request refused as bad input
	// (the agent counts them in ofctl_agent_invalid_inputs_total).
	OnInvalid func(call string, err error)
}

// Server serves Docker's network driver and IPAM driver calls.
type Server struct {
	cfg     Config
	st      *state
	metrics *Metrics
	calls   map[string]func(*call) (any, error)
}

// New loads the network bindings from cfg.StateFile and returns a server.
func New(cfg Config) (*Server, error) {
	if cfg.View == nil || cfg.Addresses == nil || cfg.Endpoints == nil {
		return nil, errors.New("docker plugin: View, Addresses and Endpoints are required")
	}
	if cfg.Socket == "" {
		cfg.Socket = DefaultSocket
	}
	if cfg.JoinTimeout <= 0 {
		cfg.JoinTimeout = DefaultJoinTimeout
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	st, err := loadState(cfg.StateFile)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, st: st, metrics: newMetrics()}
	s.calls = map[string]func(*call) (any, error){
		callActivate:         constant(activateResponse{Implements: []string{"NetworkDriver", "IpamDriver"}}),
		callNetCapabilities:  constant(netCapabilitiesResponse{Scope: "local", ConnectivityScope: "global"}),
		callCreateNetwork:    s.createNetwork,
		callDeleteNetwork:    s.deleteNetwork,
		callAllocateNetwork:  s.allocateNetwork,
		callFreeNetwork:      s.freeNetwork,
		callCreateEndpoint:   s.createEndpoint,
		callDeleteEndpoint:   s.deleteEndpoint,
		callEndpointOperInfo: s.endpointOperInfo,
		callJoin:             s.join,
		callLeave:            s.leave,
		callDiscoverNew:      s.discover,
		callDiscoverDelete:   s.discover,
		callProgramExternal:  s.programExternal,
		callRevokeExternal:   s.revokeExternal,
		callIpamCapabilities: constant(ipamCapabilitiesResponse{}),
		callAddressSpaces:    constant(addressSpacesResponse{LocalDefaultAddressSpace: AddressSpace, GlobalDefaultAddressSpace: AddressSpace}),
		callRequestPool:      s.requestPool,
		callReleasePool:      s.releasePool,
		callRequestAddress:   s.requestAddress,
		callReleaseAddress:   s.releaseAddress,
	}
	return s, nil
}

// constant answers a call whose request carries nothing; a body, if any,
// is ignored.
func constant(resp any) func(*call) (any, error) {
	return func(*call) (any, error) { return resp, nil }
}

// Metrics returns the plugin's collectors (register them with the agent's
// registry).
func (s *Server) Metrics() *Metrics { return s.metrics }

// Networks returns the Docker networks bound to the cluster view.
func (s *Server) Networks() []Network {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	out := make([]Network, 0, len(s.st.networks))
	for _, n := range s.st.networks {
		out = append(out, n)
	}
	return out
}

// Listen makes the plugin's socket: its directory is created, a stale
// socket (no one answers on it) is replaced, a live one is an error.
func Listen(path string) (net.Listener, error) {
	l, err := unixsock.Listen(path, 0o600) // dockerd runs as root
	if err != nil {
		return nil, fmt.Errorf("docker plugin: %w", err)
	}
	return l, nil
}

// Socket is the configured socket's path.
func (s *Server) Socket() string { return s.cfg.Socket }

// Serve answers calls on the configured socket until ctx ends, then closes
// it and removes the socket file (dockerd then fails calls at once with
// "connection refused" or "no such file", after its retries).
func (s *Server) Serve(ctx context.Context) error {
	l, err := Listen(s.cfg.Socket)
	if err != nil {
		return err
	}
	return s.ServeListener(ctx, l)
}

// ServeListener is Serve on a listener already made (with Listen).
func (s *Server) ServeListener(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn)}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	s.cfg.Logger.Info("docker plugin listening", "socket", s.cfg.Socket)
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
		return nil
	case err := <-done:
		return fmt.Errorf("docker plugin: %w", err)
	}
}

// Handler serves the plugin protocol: POST /<Call>.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	name := strings.TrimPrefix(r.URL.Path, "/")
	if len(name) > 64 {
		name = name[:64] + "..."
	}
	fn, known := s.calls[name]
	label := name
	if !known {
		label = "unknown"
	}
	c := &call{name: name}
	var resp any
	var err error
	switch {
	case !known:
		err = notFound{name}
	case r.Method != http.MethodPost:
		err = invalid("%s: method %s, Docker sends POST", name, r.Method)
	default:
		body, rerr := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if rerr != nil {
			err = invalid("reading the request: %v", rerr)
			break
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CallTimeout+s.cfg.JoinTimeout)
		c.ctx, c.body = ctx, body
		resp, err = fn(c)
		cancel()
	}
	s.answer(w, c, label, resp, err)
	s.metrics.observe(label, c.result(err), time.Since(start))
}

// answer writes the response, or the error in Docker's format with a
// non-200 status, and logs failures.
func (s *Server) answer(w http.ResponseWriter, c *call, label string, resp any, err error) {
	w.Header().Set("Content-Type", "application/vnd.docker.plugins.v1+json")
	if err == nil {
		if c.note != "" {
			s.cfg.Logger.Info("docker plugin call for an unknown object, answered yes", append([]any{"call", c.name, "note", c.note}, c.attrs...)...)
		}
		_ = json.NewEncoder(w).Encode(resp)
		return
	}
	status := http.StatusInternalServerError
	var inv *invalidError
	var nf notFound
	switch {
	case errors.As(err, &nf):
		status = http.StatusNotFound
	case errors.As(err, &inv):
		status = http.StatusBadRequest
	}
	attrs := append([]any{"call", label, "err", err}, c.attrs...)
	if status == http.StatusInternalServerError {
		s.cfg.Logger.Error("docker plugin call failed", attrs...)
	} else {
		s.cfg.Logger.Warn("docker plugin call refused", attrs...)
		if s.cfg.OnInvalid != nil {
			s.cfg.OnInvalid(label, err)
		}
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorResponse{Err: "ofctl-agent: " + err.Error()})
}

// call is one request being handled.
type call struct {
	name  string
	ctx   context.Context
	body  []byte
	attrs []any  // for log lines: network, endpoint, ip
	note  string // why a call that succeeded was odd (an unknown object)
}

func (c *call) decode(v any) error {
	if err := decode(c.body, v); err != nil {
		return invalid("%v", err)
	}
	return nil
}

func (c *call) log(kv ...any) { c.attrs = append(c.attrs, kv...) }

func (c *call) ignore(why string) { c.note = why }

// result is the metric label of a finished call.
func (c *call) result(err error) string {
	var inv *invalidError
	var nf notFound
	switch {
	case err == nil && c.note != "":
		return "ignored"
	case err == nil:
		return "ok"
	case errors.As(err, &inv), errors.As(err, &nf):
		return "invalid"
	}
	return "error"
}

// invalidError is a request refused as bad input (HTTP 400): malformed,
// naming what the view or the plugin does not know, asking what the
// network cannot give.
type invalidError struct{ msg string }

func (e *invalidError) Error() string { return e.msg }

func invalid(format string, args ...any) error {
	return &invalidError{msg: fmt.Sprintf(format, args...)}
}

// notFound is a call the plugin does not implement (HTTP 404: Docker
// treats it as "not implemented" for its optional calls).
type notFound struct{ call string }

func (e notFound) Error() string { return fmt.Sprintf("unknown call %q", e.call) }
