package metrics

import (
	"context"
	"fmt"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/agent"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
)

// OwnSwitch keeps an OpenFlow connection of the metrics' own to the switch
// at cfg.Addr until ctx ends or stop is called (reconnecting with backoff)
// and returns OVSConfig.Switch for it, falling back to fallback (the agent's
// connection: AgentSwitch) while it is down, e.g. before the bridge exists.
// Open vSwitch answers each connection's messages in order: on the agent's
// connection, its flow_mods and barriers would wait behind a port-stats
// reply of a megabyte at 10,000 ports. stop closes the connection and
// returns once its goroutine has ended (nothing logs after it).
func OwnSwitch(ctx context.Context, cfg openflow.Config, fallback func() Switch) (get func() Switch, stop func(), err error) {
	return OwnSwitchAfter(ctx, cfg, fallback, nil, 0)
}

// OwnSwitchAfter is OwnSwitch connecting only once after is closed, or
// maxWait later if it never is (after nil: at once): an agent's start,
// which needs Open vSwitch's every cycle for its own dump, does not share
// it with a connection that only serves scrapes. Until then get returns
// the fallback, so a scrape before is still answered from the switch.
func OwnSwitchAfter(ctx context.Context, cfg openflow.Config, fallback func() Switch,
	after <-chan struct{}, maxWait time.Duration) (get func() Switch, stop func(), err error) {
	if cfg.SentHistory == 0 {
		cfg.SentHistory = 64 // requests only: no flow_mod for an error to name
	}
	cl, err := openflow.NewClient(openflow.ClientConfig{Conn: cfg, Logger: cfg.Logger})
	if err != nil {
		return nil, nil, fmt.Errorf("metrics connection: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if after != nil {
			t := time.NewTimer(maxWait)
			defer t.Stop()
			select {
			case <-after:
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
		_ = cl.Run(ctx)
	}()
	get = func() Switch {
		if c := cl.Current(); c != nil && c.Err() == nil {
			return c
		}
		if fallback != nil {
			return fallback()
		}
		return nil // not a typed nil
	}
	return get, func() { cancel(); <-done }, nil
}

// AgentSwitch is OVSConfig.Switch for an agent: its current connection.
func AgentSwitch(ag *agent.Agent) func() Switch {
	return func() Switch {
		if c := ag.Conn(); c != nil {
			return c
		}
		return nil // not a typed nil
	}
}

// AgentPortLabels is OVSConfig.Ports for an agent: network and IP of the
// programmed endpoints, container from the interfaces' external_ids.
func AgentPortLabels(ag *agent.Agent) func() map[string]PortLabels {
	return func() map[string]PortLabels { return portLabels(ag.Interfaces(), ag.LocalEndpoints()) }
}

func portLabels(ifaces []ovsdb.Interface, eps []pipeline.Endpoint) map[string]PortLabels {
	out := make(map[string]PortLabels, len(eps))
	for _, i := range ifaces {
		if id := i.ExternalIDs[endpoint.KeyContainerID]; id != "" {
			out[i.Name] = PortLabels{Container: id}
		}
	}
	for _, e := range eps {
		l := out[e.Port]
		l.Network, l.IP, l.Role = e.Network, e.IP.String(), "endpoint"
		if e.Gateway {
			l.Role = "gateway"
		}
		out[e.Port] = l
	}
	return out
}
