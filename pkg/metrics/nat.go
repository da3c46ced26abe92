package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ofctl-agent/ofctl-agent/pkg/netfilter"
)

// NATSource is what the NAT collector reads: *netfilter.Keeper.
type NATSource interface {
	Counters() (netfilter.Counters, error)
	Status() netfilter.Status
}

// NATCollector exports the gateways' packet filter (package netfilter):
// the nftables counters of the agent's table, read from the kernel at
// scrape time (a few netlink dumps of one table: well under a millisecond
// for hundreds of rules), and the Keeper's status. Register it in
// Sources.Extra.
type NATCollector struct {
	src   NATSource
	descs map[string]*prometheus.Desc
}

var (
	publishLabels = []string{"network", "endpoint", "protocol", "host_port"}
	natSpecs      = []metricSpec{
		{"nat_masquerade_connections_total", "Connections masqueraded to the host's address, by network (the masquerade rule sees their first packet).", []string{"network"}},
		{"nat_outside_packets_total", "Packets forwarded between a network and the outside world through its gateway (masqueraded when NAT is on), by direction (egress: from the containers; ingress: the replies).", []string{"network", "direction"}},
		{"nat_outside_bytes_total", "Bytes forwarded between a network and the outside world through its gateway, by direction.", []string{"network", "direction"}},
		{"nat_dropped_packets_total", "Packets the gateway rules dropped, by network and reason (spoofed: source outside the subnet; blocked: to a blocked address; unsolicited: a new connection towards the network, not to a published port).", []string{"network", "reason"}},
		{"nat_published_connections_total", "Connections to a published port (from outside, the host or containers).", publishLabels},
		{"nat_published_packets_total", "Packets of the connections to a published port, both ways (host ports of one container port share them).", publishLabels},
		{"nat_published_bytes_total", "Bytes of the connections to a published port, both ways (host ports of one container port share them).", publishLabels},
		{"nat_rules_in_sync", "1 when the kernel held the desired packet-filter rules at the last comparison.", nil},
		{"nat_repairs_total", "Changes made by others to the agent's packet-filter rules that the agent undid.", nil},
		{"nat_sync_failures_total", "Failed comparisons or changes of the packet-filter rules (retried).", nil},
		{"nat_scrape_success", "1 when this scrape read the packet-filter counters from the kernel.", nil},
		{"nat_scrape_duration_seconds", "Time this scrape took to read the packet-filter counters.", nil},
	}
)

// NewNATCollector returns a collector reading src at every scrape.
func NewNATCollector(src NATSource) *NATCollector {
	c := &NATCollector{src: src, descs: map[string]*prometheus.Desc{}}
	for _, s := range natSpecs {
		c.descs[s.name] = prometheus.NewDesc(ns+"_"+s.name, s.help, s.labels, nil)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *NATCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *NATCollector) Collect(ch chan<- prometheus.Metric) {
	emit := func(name string, t prometheus.ValueType, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], t, v, labels...)
	}
	st := c.src.Status()
	emit("nat_rules_in_sync", prometheus.GaugeValue, b2f(st.InSync))
	emit("nat_repairs_total", prometheus.CounterValue, float64(st.Repairs))
	emit("nat_sync_failures_total", prometheus.CounterValue, float64(st.Failures))
	start := time.Now()
	counters, err := c.src.Counters()
	emit("nat_scrape_duration_seconds", prometheus.GaugeValue, time.Since(start).Seconds())
	emit("nat_scrape_success", prometheus.GaugeValue, b2f(err == nil))
	if err != nil {
		return
	}
	for _, n := range counters.Networks {
		emit("nat_masquerade_connections_total", prometheus.CounterValue, float64(n.Masqueraded), n.Network)
		for dir, v := range map[string]netfilter.Counter{"egress": n.Egress, "ingress": n.Ingress} {
			emit("nat_outside_packets_total", prometheus.CounterValue, float64(v.Packets), n.Network, dir)
			emit("nat_outside_bytes_total", prometheus.CounterValue, float64(v.Bytes), n.Network, dir)
		}
		for reason, v := range n.Dropped {
			emit("nat_dropped_packets_total", prometheus.CounterValue, float64(v.Packets), n.Network, reason)
		}
	}
	for _, p := range counters.Publishes {
		labels := []string{p.Network, p.Endpoint, string(p.Proto), strconv.Itoa(int(p.HostPort))}
		emit("nat_published_connections_total", prometheus.CounterValue, float64(p.Connections), labels...)
		emit("nat_published_packets_total", prometheus.CounterValue, float64(p.Traffic.Packets), labels...)
		emit("nat_published_bytes_total", prometheus.CounterValue, float64(p.Traffic.Bytes), labels...)
	}
}
