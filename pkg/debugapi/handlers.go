package debugapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/agent"
	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
)

// Source is what the handlers read; *agent.Agent satisfies it.
type Source interface {
	Desired() []agent.Owned        // the flows the agent wants, by owner (read only)
	Interfaces() []ovsdb.Interface // the bridge's interfaces (port names)
	// LocalState gives the networks and this host's endpoints (filters,
	// trace defaults); remote endpoints are not read (O(local) per request).
	LocalState() pipeline.State
}

// Revisioned is a Source that counts changes of its desired flows
// (*agent.Agent's DesiredRevision): /debug/trace then builds its model of
// the flows once per revision instead of per request.
type Revisioned interface {
	DesiredRevision() uint64
}

// Options configure the handlers.
type Options struct {
	Bridge string // default "br-int"
	// OpenFlow is where the bridge's flows are read: each /debug/flows
	// request dials a connection of its own, never the agent's (OVS answers
	// a connection's messages in order: its flow_mods would wait behind a
	// dump of every flow). No Addr: /debug/flows answers 503.
	OpenFlow openflow.Config
	// VswitchdCtl gives the path of ovs-vswitchd's unixctl socket, for
	// ofproto/trace (see VswitchdCtl for the default).
	VswitchdCtl func() (string, error)
	Logger      *slog.Logger
	Timeout     time.Duration // per request; default 15s
}

// server serves the debug endpoints. dump and trace are seams for tests.
type server struct {
	src     Source
	of      openflow.Config
	bridge  string
	log     *slog.Logger
	timeout time.Duration
	dump    func(ctx context.Context) ([]flow.Stats, error)

	mu    sync.Mutex // guards model and rev
	model *Model     // of the desired flows of revision rev (Revisioned sources)
	rev   uint64
	trace func(ctx context.Context, bridge, packet string) (string, error)
}

// Patterns of the endpoints, as http.ServeMux patterns.
const (
	FlowsPattern = "GET /debug/flows"
	TracePattern = "GET /debug/trace"
)

// Handlers returns the debug endpoints by ServeMux pattern (FlowsPattern,
// TracePattern), ready for mux.Handle.
func Handlers(src Source, opts Options) map[string]http.Handler {
	s := newServer(src, opts)
	return map[string]http.Handler{
		FlowsPattern: http.HandlerFunc(s.serveFlows),
		TracePattern: http.HandlerFunc(s.serveTrace),
	}
}

func newServer(src Source, opts Options) *server {
	s := &server{src: src, of: opts.OpenFlow, bridge: opts.Bridge, log: opts.Logger, timeout: opts.Timeout}
	if s.bridge == "" {
		s.bridge = "br-int"
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.timeout <= 0 {
		s.timeout = 15 * time.Second
	}
	s.dump = s.dumpConn
	uc := Unixctl{Path: opts.VswitchdCtl}
	s.trace = func(ctx context.Context, bridge, packet string) (string, error) {
		return uc.Call(ctx, "ofproto/trace", bridge, packet)
	}
	return s
}

// errNoSwitch: no OpenFlow address to read flows from.
var errNoSwitch = errors.New("no OpenFlow address configured")

// dumpConn reads every flow of the bridge on a connection opened for the
// request.
func (s *server) dumpConn(ctx context.Context) ([]flow.Stats, error) {
	if s.of.Addr == "" {
		return nil, errNoSwitch
	}
	c, err := openflow.Dial(ctx, s.of)
	if err != nil {
		return nil, fmt.Errorf("%w (is ovs-vswitchd running?)", err)
	}
	defer c.Close()
	raw, err := c.FlowStats(ctx, openflow.FlowStatsFilter{TableID: openflow.AllTables, RawOnly: true})
	if err != nil {
		return nil, fmt.Errorf("flow stats: %w", err)
	}
	out := make([]flow.Stats, 0, len(raw))
	for i := range raw {
		st, err := flow.FromReply(&raw[i])
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

func (s *server) env() env { return env{state: s.src.LocalState(), ifs: s.src.Interfaces()} }

// flowModel is the model of the desired flows: kept per revision when the
// source counts them, else built for the request.
func (s *server) flowModel() *Model {
	rs, ok := s.src.(Revisioned)
	if !ok {
		return NewModel(s.src.Desired())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rev := rs.DesiredRevision() // before Desired: a change meanwhile makes the next request rebuild
	if s.model == nil || s.rev != rev {
		s.model, s.rev = NewModel(s.src.Desired()), rev
	}
	return s.model
}

func (s *server) serveFlows(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) {
		return
	}
	fq, err := parseFlowQuery(r.URL.Query(), s.env())
	if err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
	defer cancel()
	actual, err := s.dump(ctx)
	if err != nil {
		s.log.Warn("debug: cannot read flows", "err", err)
		http.Error(w, "cannot read flows from OVS: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	var kept []item
	for _, it := range compareFlows(s.src.Desired(), actual) {
		if fq.keep(it) {
			kept = append(kept, it)
		}
	}
	rep := report(s.bridge, kept, fq.filters, len(fq.filters) == 0)
	if fq.json {
		writeJSON(w, rep)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_ = WriteFlowsText(w, rep)
}

func (s *server) serveTrace(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) {
		return
	}
	q := r.URL.Query()
	asJSON, err := wantJSON(q)
	if err == nil {
		q.Del("format")
	}
	var tp tracePacket
	if err == nil {
		tp, err = parseTraceQuery(q, s.env())
	}
	if err != nil {
		http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
	defer cancel()
	rep := s.runTrace(ctx, tp)
	if asJSON {
		writeJSON(w, rep)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_ = WriteTraceText(w, rep)
}

// runTrace predicts the packet's path and asks OVS for its own.
func (s *server) runTrace(ctx context.Context, tp tracePacket) TraceReport {
	rep := TraceReport{Bridge: s.bridge, Packet: tp.pkt.OVSFlow(tp.proto), Differences: []string{}}
	rep.Model = modelSide(s.flowModel().Run(tp.pkt), tp.pkt)
	text, err := s.trace(ctx, s.bridge, rep.Packet)
	if err != nil {
		s.log.Warn("debug: ofproto/trace failed", "err", err)
		rep.OVSError = "ofproto/trace: " + err.Error()
		return rep
	}
	rep.OVSText = text
	ot, err := ParseOVSTrace(text)
	if err != nil {
		rep.OVSError = err.Error()
		return rep
	}
	o := ovsSide(ot)
	_, shown := ot.changedFields()
	rep.OVS, rep.DatapathActions = &o, ot.Datapath
	rep.Differences = append(rep.Differences, differences(rep.Model, o, shown)...)
	return rep
}

func allowGet(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // keep "->" in actions readable
	_ = enc.Encode(v)
}
