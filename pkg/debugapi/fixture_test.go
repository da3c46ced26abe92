package debugapi

import (
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/contiv/libOpenflow/openflow13"

	"github.com/ofctl-agent/ofctl-agent/pkg/agent"
	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
)

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }
func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// owners splits a state's flows by object, named as the agent names them.
func owners(s pipeline.State) []agent.Owned {
	out := []agent.Owned{{Name: "fixed", Flows: pipeline.FixedFlows(s.TunnelPort)}}
	nets := map[string]pipeline.Network{}
	for _, n := range s.Networks {
		nets[n.Name] = n
		out = append(out, agent.Owned{Name: "network " + n.Name, Flows: pipeline.NetworkFlows(n)})
	}
	for _, e := range s.Endpoints {
		out = append(out, agent.Owned{Name: fmt.Sprintf("endpoint %s (%s %s)", e.Port, e.Network, e.IP),
			Flows: pipeline.EndpointFlows(nets[e.Network], e)})
	}
	hosts := map[string]pipeline.RemoteHost{}
	for _, h := range s.Hosts {
		hosts[h.Name] = h
		out = append(out, agent.Owned{Name: "host " + h.Name, Flows: pipeline.RemoteHostFlows(h, s.Networks)})
	}
	for _, e := range s.RemoteEndpoints {
		out = append(out, agent.Owned{Name: "remote endpoint " + e.IP.String(),
			Flows: pipeline.RemoteEndpointFlows(nets[e.Network], hosts[e.Host], e)})
	}
	return out
}

func allFlows(owned []agent.Owned) []flow.Flow {
	var out []flow.Flow
	for _, o := range owned {
		out = append(out, o.Flows...)
	}
	return out
}

// statsOfFlow is the flow as OVS would report it in flow stats.
func statsOfFlow(t *testing.T, f flow.Flow, packets uint64) flow.Stats {
	t.Helper()
	fm, err := f.FlowMod(openflow13.FC_ADD)
	if err != nil {
		t.Fatal(err)
	}
	st, err := flow.StatsOf(&openflow13.FlowStats{TableId: f.Table, Priority: f.Priority, Cookie: f.Cookie,
		PacketCount: packets, ByteCount: 100 * packets, Match: fm.Match, Instructions: fm.Instructions})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// fakeSource is a Source with fixed answers.
type fakeSource struct {
	owned []agent.Owned
	state pipeline.State
	ifs   []ovsdb.Interface
}

func (f fakeSource) Desired() []agent.Owned        { return f.owned }
func (f fakeSource) Interfaces() []ovsdb.Interface { return f.ifs }
func (f fakeSource) LocalState() pipeline.State    { return f.state }

func refSource() fakeSource {
	s := pipeline.Reference()
	ifs := []ovsdb.Interface{{Name: "gre0", OFPort: 100, Type: "gre"}, {Name: "broken", OFPort: -1}}
	for _, e := range s.Endpoints {
		ifs = append(ifs, ovsdb.Interface{Name: e.Port, OFPort: int(e.OFPort)})
	}
	// The agent's State has no remote endpoints (they exist in etcd mode only).
	return fakeSource{owned: owners(s), state: s, ifs: ifs}
}
