package resolver

import (
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Kind is how a query was answered; it labels ofctl_agent_dns_answers_total.
type Kind uint8

// Kinds of answer.
const (
	KindLocal     Kind = iota // answered from the table (records or NODATA)
	KindForwarded             // an upstream's answer relayed (whatever its rcode)
	KindNXDomain              // a cluster name that does not exist (never forwarded)
	KindRefused               // the source is outside the network's subnet
	KindServFail              // every upstream failed, none is configured, or names not loaded yet
	KindFormErr               // unparsable message, not exactly one question, EDNS version
	KindNotImp                // opcode other than QUERY, class other than IN, zone transfers
	numKinds
)

var kindNames = [numKinds]string{"local", "forwarded", "nxdomain", "refused", "servfail", "formerr", "notimp"}

func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return "unknown"
}

// drop is why a message got no answer at all.
type drop uint8

const (
	dropShort          drop = iota // shorter than a DNS header
	dropResponse                   // QR set: a response, never answered (no reflection loops)
	dropOversized                  // larger than any query needs to be
	dropOverload                   // forwarding in-flight cap reached
	dropSourceOverload             // the source's share of the in-flight cap reached
	dropTCPConns                   // TCP connection cap reached
	numDrops
)

// dropEvent numbers drop reasons after answer kinds (Server.note).
func dropEvent(d drop) int { return int(numKinds) + int(d) }

var dropNames = [numDrops]string{"short", "response", "oversized", "overload", "source_overload", "tcp_conns"}

// netStats are one network's counters, written on the query path.
type netStats struct {
	queries atomic.Uint64
	answers [numKinds]atomic.Uint64
	drops   [numDrops]atomic.Uint64
}

type upstreamFailure struct {
	upstream netip.AddrPort
	reason   string // timeout, error, servfail, refused, mismatch
}

// Metrics are the resolver's Prometheus metrics: counters kept on the query
// path with atomics and exported at scrape time, and a latency histogram.
// Register it (Server.Metrics) in the agent's registry.
type Metrics struct {
	names *Table

	mu       sync.Mutex
	nets     map[string]*netStats
	upstream map[upstreamFailure]uint64
	inflight atomic.Int64

	latency        *prometheus.HistogramVec
	latencyLocal   prometheus.Observer
	latencyForward prometheus.Observer

	queries, answers, drops, upFail, namesDesc, inflightDesc *prometheus.Desc
}

const metricPrefix = "ofctl_agent_dns_"

func newMetrics(names *Table) *Metrics {
	m := &Metrics{
		names:    names,
		nets:     map[string]*netStats{},
		upstream: map[upstreamFailure]uint64{},
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: metricPrefix + "query_duration_seconds",
			Help: "From a query's arrival to its answer being sent, by path: local (answered by the agent, errors included) or forwarded (sent upstream).",
			// 25 us .. ~6.5 s: a table lookup to a slow upstream's timeout.
			Buckets: prometheus.ExponentialBuckets(25e-6, 2, 19),
		}, []string{"path"}),
		queries: prometheus.NewDesc(metricPrefix+"queries_total",
			"DNS messages received on a network's resolver address (UDP and TCP).", []string{"network"}, nil),
		answers: prometheus.NewDesc(metricPrefix+"answers_total",
			"Answers sent, by kind: local, forwarded, nxdomain, refused, servfail, formerr, notimp.", []string{"network", "kind"}, nil),
		drops: prometheus.NewDesc(metricPrefix+"dropped_total",
			"Messages not answered, by reason: short, response, oversized, overload, source_overload, tcp_conns.", []string{"network", "reason"}, nil),
		upFail: prometheus.NewDesc(metricPrefix+"upstream_failures_total",
			"Failed attempts to forward a query to an upstream resolver, by reason: timeout, error, servfail, refused, mismatch.", []string{"upstream", "reason"}, nil),
		namesDesc: prometheus.NewDesc(metricPrefix+"names",
			"Distinct names a network's resolver answers.", []string{"network"}, nil),
		inflightDesc: prometheus.NewDesc(metricPrefix+"forwards_in_flight",
			"Queries waiting for an upstream resolver.", nil, nil),
	}
	m.latencyLocal = m.latency.WithLabelValues("local")
	m.latencyForward = m.latency.WithLabelValues("forwarded")
	return m
}

// network returns the counters of a network, creating them.
func (m *Metrics) network(name string) *netStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.nets[name]
	if s == nil {
		s = &netStats{}
		m.nets[name] = s
	}
	return s
}

// forget drops a removed network's series.
func (m *Metrics) forget(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.nets, name)
}

func (m *Metrics) upstreamFailed(up netip.AddrPort, reason string) {
	m.mu.Lock()
	m.upstream[upstreamFailure{up, reason}]++
	m.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.queries, m.answers, m.drops, m.upFail, m.namesDesc, m.inflightDesc} {
		ch <- d
	}
	m.latency.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	nets := make(map[string]*netStats, len(m.nets))
	for k, v := range m.nets {
		nets[k] = v
	}
	fails := make(map[upstreamFailure]uint64, len(m.upstream))
	for k, v := range m.upstream {
		fails[k] = v
	}
	m.mu.Unlock()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for name, s := range nets {
		counter(m.queries, s.queries.Load(), name)
		for k := range numKinds {
			counter(m.answers, s.answers[k].Load(), name, kindNames[k])
		}
		for d := range numDrops {
			counter(m.drops, s.drops[d].Load(), name, dropNames[d])
		}
		ch <- prometheus.MustNewConstMetric(m.namesDesc, prometheus.GaugeValue, float64(m.names.Len(name)), name)
	}
	keys := make([]upstreamFailure, 0, len(fails))
	for k := range fails {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b upstreamFailure) int { return a.upstream.Compare(b.upstream) })
	for _, k := range keys {
		counter(m.upFail, fails[k], k.upstream.String(), k.reason)
	}
	ch <- prometheus.MustNewConstMetric(m.inflightDesc, prometheus.GaugeValue, float64(m.inflight.Load()))
	m.latency.Collect(ch)
}
