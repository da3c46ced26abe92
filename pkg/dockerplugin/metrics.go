package dockerplugin

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts and times the calls Docker makes. Register it with the
// agent's registry (it is a prometheus.Collector).
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics() *Metrics {
	return &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ofctl_agent_docker_plugin_requests_total",
			Help: "Calls from dockerd to the network and IPAM drivers, by call (unknown: a path the plugin does not serve) and result: ok; ignored (answered yes for an unknown network or endpoint, e.g. a delete after an agent restart); invalid (refused as bad input, HTTP 400/404); error (the agent failed, HTTP 500).",
		}, []string{"call", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ofctl_agent_docker_plugin_request_duration_seconds",
			Help: "Time to answer a call from dockerd, by call (Join includes waiting until the endpoint's flows are installed).",
			// 0.1 ms .. ~3.3 s, then +Inf: dockerd itself never gives up.
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"call"}),
	}
}

func (m *Metrics) observe(call, result string, d time.Duration) {
	m.requests.WithLabelValues(call, result).Inc()
	m.duration.WithLabelValues(call).Observe(d.Seconds())
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.requests.Describe(ch)
	m.duration.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.requests.Collect(ch)
	m.duration.Collect(ch)
}
