package etcd

import "github.com/prometheus/client_golang/prometheus"

// Collector exports the source's and publisher's state at scrape time.
// Rejected records and lost conflicts are counted by the agent
// (ofctl_agent_invalid_inputs_total{kind="etcd-record"|"conflict"}).
type Collector struct {
	src   *Source
	pub   *Publisher // may be nil
	descs map[string]*prometheus.Desc
}

var collectorHelp = []struct{ name, help string }{
	{"etcd_connected", "1 while etcd answers (list, watch or the periodic probe); the last view stays in force otherwise."},
	{"etcd_revision", "etcd revision of the cluster view in force."},
	{"etcd_resyncs_total", "Ranges listed again because their watch fell behind a compaction, by range: all (the whole prefix, --all-remote-flows), base (the hosts' and networks' records), claims (one network's claims)."},
	{"etcd_records", "Records stored under the prefix, by kind (network, host, endpoint; old-layout: records of the key layout of earlier versions, ignored)."},
	{"etcd_view_remote_endpoints", "Endpoints in the cluster view (conflicts resolved, this host's included)."},
	{"etcd_networks_loaded", "Networks whose endpoint claims this host loads and watches (scoped: the networks it uses)."},
	{"etcd_host_layout_readers", "Hosts whose record says their agent reads the host layout alone (the previous version); while above 0, upgraded hosts also write their claims there (docs/etcd.md, Upgrading from the host layout)."},
	{"etcd_publish_pending", "1 while this host's records are not all written to etcd."},
	{"etcd_publish_failures_total", "Failed attempts to write this host's records (retried)."},
	{"etcd_lease_grants_total", "Leases granted to this host's records (more than one: a lease expired)."},
	{"etcd_foreign_writes_total", "Changes to this host's records in etcd that this agent did not make (each restored; docs/etcd.md, Trust and roles)."},
}

// NewCollector returns a collector for src and, if not nil, pub.
func NewCollector(src *Source, pub *Publisher) *Collector {
	c := &Collector{src: src, pub: pub, descs: map[string]*prometheus.Desc{}}
	for _, h := range collectorHelp {
		var labels []string
		switch h.name {
		case "etcd_records":
			labels = []string{"kind"}
		case "etcd_resyncs_total":
			labels = []string{"range"}
		}
		c.descs[h.name] = prometheus.NewDesc("ofctl_agent_"+h.name, h.help, labels, nil)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	emit := func(name string, t prometheus.ValueType, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], t, v, labels...)
	}
	s := c.src.State()
	emit("etcd_connected", prometheus.GaugeValue, b2f(s.Connected))
	emit("etcd_revision", prometheus.GaugeValue, float64(s.Revision))
	emit("etcd_resyncs_total", prometheus.CounterValue, float64(s.Resyncs), "all")
	emit("etcd_resyncs_total", prometheus.CounterValue, float64(s.BaseResyncs), "base")
	emit("etcd_resyncs_total", prometheus.CounterValue, float64(s.ClaimResyncs), "claims")
	emit("etcd_records", prometheus.GaugeValue, float64(s.Networks), "network")
	emit("etcd_records", prometheus.GaugeValue, float64(s.Hosts), "host")
	emit("etcd_records", prometheus.GaugeValue, float64(s.Claims), "endpoint")
	emit("etcd_records", prometheus.GaugeValue, float64(s.OldLayout), "old-layout")
	emit("etcd_view_remote_endpoints", prometheus.GaugeValue, float64(s.ViewEndpoints))
	emit("etcd_networks_loaded", prometheus.GaugeValue, float64(s.Loaded))
	emit("etcd_host_layout_readers", prometheus.GaugeValue, float64(s.HostLayoutReaders))
	if c.pub == nil {
		return
	}
	p := c.pub.State()
	emit("etcd_publish_pending", prometheus.GaugeValue, b2f(p.Pending))
	emit("etcd_publish_failures_total", prometheus.CounterValue, float64(p.Failures))
	emit("etcd_lease_grants_total", prometheus.CounterValue, float64(p.Grants))
	emit("etcd_foreign_writes_total", prometheus.CounterValue, float64(p.ForeignWrites))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
