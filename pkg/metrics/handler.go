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

// NewHandler returns the /metrics handler of s.
func NewHandler(s Sources) *Handler {
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.OVS.Logger == nil {
		s.OVS.Logger = s.Logger
	}
	return &Handler{reg: NewRegistry(s), ovs: NewOVS(s.OVS), log: s.Logger}
}

var gzipPool = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return w
}}

// ServeHTTP implements http.Handler. As with node_exporter,
// ?collect[]=ports (repeatable) limits the OVS collectors that run, e.g.
// to scrape the cheap port counters more often than the flow dump.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	only := r.URL.Query()["collect[]"]
	for _, c := range only {
		if !slices.Contains(Collectors, c) {
			http.Error(w, fmt.Sprintf("unknown collector %q in collect[] (have %s)", c, strings.Join(Collectors, ", ")), http.StatusBadRequest)
			return
		}
	}
	ovs := make(chan *OVSScrape, 1)
	go func() { ovs <- h.ovs.Scrape(only...) }()
	mfs, err := h.reg.Gather()
	if err != nil { // serve what was gathered, as promhttp.ContinueOnError
		h.log.Warn("metrics: gathering", "err", err)
	}
	scrape := <-ovs
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
			h.log.Debug("metrics: writing the response", "err", err)
			return // the client went away
		}
	}
	if err := scrape.WriteText(bw); err != nil {
		h.log.Debug("metrics: writing the response", "err", err)
		return
	}
	if err := bw.Flush(); err != nil {
		h.log.Debug("metrics: writing the response", "err", err)
	}
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
