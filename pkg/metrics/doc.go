// Package metrics exports the agent's state to Prometheus. Collectors read
// their source at scrape time (no background updates, no package-level
// registry): names follow Prometheus conventions (ofctl_agent_ prefix, base
// units, _total on counters).
package metrics
