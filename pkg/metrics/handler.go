package metrics

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/ofctl-agent/ofctl-agent/pkg/agent"
)

// Sources are what the agent's metrics are read from.
type Sources struct {
	Status func() agent.Status // agent.Agent.Status
	OVS    OVSConfig
	Loop   *LoopMetrics           // fed by the agent's OnSync and OnApply hooks
	Extra  []prometheus.Collector // registered too (e.g. the cluster backend's)
	Logger *slog.Logger
}

// NewRegistry returns the registry of the low-cardinality metrics: the
// agent's status, the loop's histograms, the Go runtime and process
// collectors, and s.Extra. It panics if s.Extra collides with them.
func NewRegistry(s Sources) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewAgentCollector(s.Status), s.Loop,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(s.Extra...)
	return reg
}

// Handler serves /metrics in the Prometheus text format: the registry's
// families, then the OVS families read live (see OVS), gzip-compressed
// (fastest level) when the client accepts it.
type Handler struct {
	reg prometheus.Gatherer
	ovs *OVS
	log *slog.Logger
}

// NewHandler returns the /metrics handler of s. Close stops the
// background reads of Open vSwitch.
func NewHandler(s Sources) *Handler {
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.OVS.Logger == nil {
		s.OVS.Logger = s.Logger
	}
	return &Handler{reg: NewRegistry(s), ovs: NewOVS(s.OVS), log: s.Logger}
}

// Close stops the background reads of Open vSwitch (see OVS).
func (h *Handler) Close() { h.ovs.Close() }

var gzipPool = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return w
}}

// ServeHTTP implements http.Handler. As with node_exporter,
// ?collect[]=NAME (repeatable) limits what is collected: "agent" (the
// registry: status, histograms, Go and process) or an OVS collector.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	agentToo, ovsOnly, err := selection(r.URL.Query()["collect[]"])
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ovs := make(chan *OVSScrape, 1)
	go func() {
		if ovsOnly == nil {
			ovs <- &OVSScrape{}
			return
		}
		ovs <- h.ovs.Scrape(ovsOnly...)
	}()
	var mfs []*dto.MetricFamily
	if agentToo {
		if mfs, err = h.reg.Gather(); err != nil { // serve what was gathered, as promhttp.ContinueOnError
			h.log.Warn("metrics: gathering", "err", err)
		}
	}
	if err := h.write(w, r, mfs, <-ovs); err != nil {
		h.log.Debug("metrics: writing the response", "err", err) // the client went away
	}
}

// selection interprets collect[]: whether to gather the registry, and the
// OVS collectors to run (empty: all; nil: none).
func selection(only []string) (agentToo bool, ovs []string, err error) {
	if len(only) == 0 {
		return true, []string{}, nil
	}
	names := append([]string{"agent"}, Collectors()...)
	for _, c := range only {
		switch {
		case !slices.Contains(names, c):
			return false, nil, fmt.Errorf("unknown collector %q in collect[] (have %s)", c, strings.Join(names, ", "))
		case c == "agent":
			agentToo = true
		default:
			ovs = append(ovs, c)
		}
	}
	return agentToo, ovs, nil
}

// write sends the registry's families, then the OVS ones.
func (h *Handler) write(w http.ResponseWriter, r *http.Request, mfs []*dto.MetricFamily, scrape *OVSScrape) error {
	w.Header().Set("Content-Type", string(expfmt.FmtText))
	var out io.Writer = w
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Add("Vary", "Accept-Encoding")
		gz := gzipPool.Get().(*gzip.Writer)
		gz.Reset(w)
		defer func() { _ = gz.Close(); gzipPool.Put(gz) }()
		out = gz
	}
	bw := bufio.NewWriterSize(out, 64<<10)
	enc := expfmt.NewEncoder(bw, expfmt.FmtText)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	if err := scrape.WriteText(bw); err != nil {
		return err
	}
	return bw.Flush()
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip.
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}
