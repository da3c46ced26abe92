// Package metrics exports the agent's state to Prometheus. Names follow
// Prometheus conventions (ofctl_agent_ prefix, base units, _total on
// counters); there is no package-level registry. NewRegistry assembles what
// /metrics serves:
//
//   - AgentCollector: agent.Status read at scrape time (readiness,
//     connections, reconnects, flow_mods, bundles and their failures,
//     syncs, drift repairs, invalid inputs by kind);
//   - OVS: Open vSwitch, read on an OpenFlow connection of the metrics' own
//     (OwnSwitch) by three collectors, each bounded by a timeout: "ports"
//     (ofctl_agent_port_{receive,transmit}_{packets,bytes,drops,errors}_total
//     labelled port, ofport, network, ip, container; one port-stats
//     request), "tables" (ofctl_agent_table_flows and
//     ofctl_agent_table_miss_drops_packets_total per table; one table-stats
//     request and the miss flows by exact cookie) and "spoof_guard"
//     (ofctl_agent_spoof_drops_packets_total per endpoint port; the drop
//     flows selected by their cookie role). Their values are cached with a
//     stated maximum age (OVSConfig.MaxAge, 5 s by default): while /metrics
//     is scraped they are read again in the background every 1 to ~4 s
//     (20 times as long as Open vSwitch took to answer), so a scrape does
//     not wait for Open vSwitch; older values are read before answering.
//     ofctl_agent_scrape_collector_{success,duration_seconds,age_seconds}{collector}
//     report each one; /metrics?collect[]=NAME runs only the named ones;
//   - LoopMetrics: histograms fed by the agent's hooks
//     (ofctl_agent_sync_duration_seconds{result}, ofctl_agent_apply_latency_seconds).
package metrics
