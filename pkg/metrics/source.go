package metrics

import (
	"github.com/ofctl-agent/ofctl-agent/pkg/agent"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
)

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
	return func() map[string]PortLabels { return portLabels(ag.Interfaces(), ag.State().Endpoints) }
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
		l.Network, l.IP = e.Network, e.IP.String()
		out[e.Port] = l
	}
	return out
}
