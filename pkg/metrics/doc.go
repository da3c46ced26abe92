// Package metrics exports the agent's state to Prometheus. Collectors read
// their source at scrape time (no background updates, no package-level
// registry): names follow Prometheus conventions (ofctl_agent_ prefix, base
// units, _total on counters). NewRegistry assembles what /metrics serves:
//
//   - AgentCollector: agent.Status (readiness, connections, reconnects,
//     flow_mods, bundles and their failures, syncs, drift repairs, invalid
//     inputs by kind);
//   - OVS: Open vSwitch read live over the agent's OpenFlow
//     connection, each part bounded by a timeout and reported by
//     ofctl_agent_scrape_collector_{success,duration_seconds}{collector}:
//     "ports" (ofctl_agent_port_{receive,transmit}_{packets,bytes,drops,errors}_total
//     labelled port, ofport, network, ip, container), "tables"
//     (ofctl_agent_table_flows and ofctl_agent_table_miss_drops_packets_total
//     per table) and "spoof_guard" (ofctl_agent_spoof_drops_packets_total per
//     endpoint port); /metrics?collect[]=NAME runs only the named ones;
//   - LoopMetrics: histograms fed by the agent's hooks
//     (ofctl_agent_sync_duration_seconds{result}, ofctl_agent_apply_latency_seconds).
package metrics
