package metrics

import (
	"slices"
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ofctl-agent/ofctl-agent/pkg/agent"
)

const ns = "ofctl_agent"

// AgentCollector exports agent.Status at scrape time.
type AgentCollector struct {
	status func() agent.Status
	descs  map[string]*prometheus.Desc
}

type metricSpec struct {
	name, help string
	labels     []string
}

var agentSpecs = []metricSpec{
	{"ready", "1 when the pipeline is in OVS (but the flows of owners OVS refused: flow_owners_failing) and the OpenFlow connection is up.", nil},
	{"invalid_inputs_total", "Inputs rejected (bad OVSDB rows, conflicts, bad cluster files, refused flows), by kind.", []string{"kind"}},
	{"openflow_connected", "1 while the OpenFlow connection is up.", nil},
	{"openflow_reconnects_total", "OpenFlow connections established after the first.", nil},
	{"openflow_connect_failures_total", "Failed OpenFlow connection attempts (dial, handshake or resync).", nil},
	{"ovsdb_connected", "1 while the OVSDB connection is up.", nil},
	{"ovsdb_reconnects_total", "OVSDB connections established after the first.", nil},
	{"ovsdb_repairs_total", "Transactions that put the bridge or tunnel port back after an out-of-band change.", nil},
	{"ovsdb_status_writes_total", "Interface rows whose status keys (ofctl-agent.installed, ofctl-agent.error) the agent wrote.", nil},
	{"ovsdb_status_write_failures_total", "Transactions writing status keys that failed (retried).", nil},
	{"flow_mods_total", "Flow modifications committed to OVS.", nil},
	{"bundles_total", "Bundles committed to OVS.", nil},
	{"bundle_failures_total", "Bundles OVS refused (nothing was applied).", nil},
	{"syncs_total", "Full comparisons of OVS with the desired flows.", nil},
	{"drift_repairs_total", "Flows fixed because OVS differed from the desired flows (drift).", nil},
	{"scoped_repairs_total", "Repairs of the table and cookie OVS's flow monitor reported changed by someone else.", nil},
	{"flow_monitor_active", "1 while OVS reports flow changes made by others (flow monitor) on the current connection.", nil},
	{"flow_monitor_pauses_total", "Times OVS paused its flow change reports (a mass change; a full comparison follows).", nil},
	{"last_sync_duration_seconds", "Duration of the last full comparison.", nil},
	{"desired_flows", "Flows the agent wants in OVS.", nil},
	{"flow_mods_refused_total", "Flow modifications OVS refused; the owner of each (an endpoint, a remote host, a network, the fixed flows) is isolated: its flows are kept out of OVS and retried with backoff.", nil},
	{"flow_owners_failing", "Owners whose flows are kept out of OVS because OVS refused one of them (see dump-flows --status failed).", nil},
	{"flows_waiting", "Desired flows not in OVS because another owner holds their key (a conflict): installed when it lets go.", nil},
	{"endpoints", "Local endpoints programmed.", nil},
	{"gateways", "Gateways this host wants (one per network it serves; pkg/gateway).", nil},
	{"gateways_in_sync", "1 when every gateway port is in OVS and its interface has its address, MAC and MTU and is up.", nil},
	{"gateway_repairs_total", "Checks that put back a gateway port or interface changed by someone else (deleted port, removed address, link down).", nil},
	{"gateway_sync_failures_total", "Checks that could not make a gateway as wanted (retried every 250 ms).", nil},
	{"api_requests_total", "Requests of the agent's local API (attach, the CNI plugin), by call (status, network, allocate, release, list, unknown) and result (ok or the error code).", []string{"call", "result"}},
	{"addresses_held", "Addresses of this host's allocator in use, by network and holder: port (a port on the bridge claims it) or allocation (allocated, its port not there yet).", []string{"network", "holder"}},
	{"address_allocations_expired_total", "Allocations dropped because no port claimed their address in time (a client died between allocation and port, and no DEL or GC released it).", []string{"network"}},
}

// NewAgentCollector returns a collector reading status on every scrape.
func NewAgentCollector(status func() agent.Status) *AgentCollector {
	c := &AgentCollector{status: status, descs: map[string]*prometheus.Desc{}}
	for _, s := range agentSpecs {
		c.descs[s.name] = prometheus.NewDesc(ns+"_"+s.name, s.help, s.labels, nil)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *AgentCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *AgentCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.status()
	gauge := func(name string, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.GaugeValue, v, labels...)
	}
	counter := func(name string, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.CounterValue, float64(v), labels...)
	}
	gauge("ready", b2f(s.Ready))
	kinds := append([]string(nil), agent.RejectKinds...)
	for k := range s.Rejects {
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		counter("invalid_inputs_total", s.Rejects[k], k)
	}
	gauge("openflow_connected", b2f(s.OpenFlow.Connected))
	counter("openflow_reconnects_total", s.OpenFlow.Reconnects)
	counter("openflow_connect_failures_total", s.OpenFlow.Failures)
	gauge("ovsdb_connected", b2f(s.OVSDB.Connected))
	counter("ovsdb_reconnects_total", s.OVSDB.Reconnects)
	counter("ovsdb_repairs_total", s.OVSDB.Repairs)
	counter("ovsdb_status_writes_total", s.OVSDB.IDWrites)
	counter("ovsdb_status_write_failures_total", s.OVSDB.IDWriteFailures)
	counter("flow_mods_total", s.Reconcile.FlowMods)
	counter("bundles_total", s.Reconcile.Bundles)
	counter("bundle_failures_total", s.Reconcile.Failures)
	counter("syncs_total", s.Reconcile.Syncs)
	counter("drift_repairs_total", s.Repairs)
	counter("scoped_repairs_total", s.Reconcile.ScopeSyncs)
	gauge("flow_monitor_active", b2f(s.FlowMonitor))
	counter("flow_monitor_pauses_total", s.FlowMonitorPauses)
	gauge("last_sync_duration_seconds", s.Reconcile.LastSync.Seconds())
	gauge("desired_flows", float64(s.Reconcile.DesiredFlows))
	counter("flow_mods_refused_total", s.Reconcile.Refused)
	gauge("flow_owners_failing", float64(s.Reconcile.Failing))
	gauge("flows_waiting", float64(s.Reconcile.WaitingFlows))
	gauge("endpoints", float64(s.Endpoints))
	gauge("gateways", float64(s.Gateways.Gateways))
	gauge("gateways_in_sync", b2f(s.Gateways.InSync))
	counter("gateway_repairs_total", s.Gateways.Repairs)
	counter("gateway_sync_failures_total", s.Gateways.Failures)
	for k, v := range s.APIRequests {
		counter("api_requests_total", v, k.Call, k.Result)
	}
	for n, a := range s.Addresses {
		gauge("addresses_held", float64(a.Ports), n, "port")
		gauge("addresses_held", float64(a.Pending), n, "allocation")
		counter("address_allocations_expired_total", a.Expired, n)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
