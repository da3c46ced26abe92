package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ofctl-agent/ofctl-agent/pkg/agent"
	"github.com/ofctl-agent/ofctl-agent/pkg/reconcile"
)

// LoopMetrics are histograms the agent's loop feeds through its hooks:
// wire ObserveSync to agent.Config.OnSync and ObserveApply to OnApply.
type LoopMetrics struct {
	sync  *prometheus.HistogramVec
	apply prometheus.Histogram
}

// NewLoopMetrics returns unregistered histograms (register the value).
func NewLoopMetrics() *LoopMetrics {
	m := &LoopMetrics{
		sync: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: ns + "_sync_duration_seconds",
			Help: "Full reconciliations (dump OVS's flows, diff, one bundle) by result: ok or error. The count is the number of runs.",
			// 1 ms .. ~16 s: a few flows to 100k flows.
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}, []string{"result"}),
		apply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    ns + "_apply_latency_seconds",
			Help:    "From an OVSDB interface change to its flows confirmed by OVS, per batch of changes.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15),
		}),
	}
	for _, r := range []string{"ok", "error"} {
		m.sync.WithLabelValues(r) // export both series from the start
	}
	return m
}

// ObserveSync records one Sync; its signature is agent.Config.OnSync's.
func (m *LoopMetrics) ObserveSync(res reconcile.SyncResult, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.sync.WithLabelValues(result).Observe(res.Duration.Seconds())
}

// ObserveApply records one batch; its signature is agent.Config.OnApply's.
func (m *LoopMetrics) ObserveApply(a agent.Applied) { m.apply.Observe(a.Latency.Seconds()) }

// Describe implements prometheus.Collector.
func (m *LoopMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.sync.Describe(ch)
	m.apply.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *LoopMetrics) Collect(ch chan<- prometheus.Metric) {
	m.sync.Collect(ch)
	m.apply.Collect(ch)
}
