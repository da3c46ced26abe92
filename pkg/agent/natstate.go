package agent

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/netfilter"
)

// natInput is what the host's packet filter is computed from: the model's
// parts that matter to it.
type natInput struct {
	View cluster.View
	// Gateways are this host's gateway ports by network name: the
	// networks it serves (the others get no rules).
	Gateways map[string]string
	// Endpoints are the local endpoints whose flows the model programs:
	// their published ports.
	Endpoints []endpoint.Endpoint
	// TunnelIP is this host's underlay address (blocked even when the
	// view does not list this host yet); Underlay the prefixes of the
	// underlay interface (a NAT network overlapping them is refused).
	TunnelIP netip.Addr
	Underlay []netip.Prefix
	Allowed  []netip.Prefix // the operator's underlay-allow
}

// natState builds the packet filter's desired state (pure):
//   - one netfilter.Network per network of the view served here, routed
//     (no masquerade) when the view says nat: false;
//   - the published ports of the endpoints, ordered by endpoint port name
//     then protocol and host port: among endpoints asking for one host
//     port at the same time the first by name gets it (the Keeper keeps a
//     port with its holder once held, across restarts too);
//   - Blocked: every host's tunnel address (/32), so that containers do
//     not reach the management plane (etcd, ssh) of the underlay, minus
//     the operator's Allowed;
//   - Underlay: the underlay interface's prefixes.
func natState(in natInput) netfilter.State {
	var s netfilter.State
	for _, n := range in.View.Networks { // sorted by name
		port, ok := in.Gateways[n.Name]
		if !ok {
			continue
		}
		s.Networks = append(s.Networks, netfilter.Network{Name: n.Name, Subnet: n.Subnet, Gateway: port, Routed: n.NoNAT})
	}
	eps := slices.Clone(in.Endpoints)
	slices.SortFunc(eps, func(a, b endpoint.Endpoint) int { return cmp.Compare(a.Port, b.Port) })
	for _, ep := range eps {
		ports := slices.Clone(ep.Ports)
		slices.SortFunc(ports, func(a, b endpoint.Published) int {
			return cmp.Or(cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.HostPort, b.HostPort))
		})
		for _, p := range ports {
			s.Publishes = append(s.Publishes, netfilter.Publish{Network: ep.Network, Endpoint: ep.Port,
				Proto: netfilter.Proto(p.Proto), HostPort: p.HostPort, IP: ep.IP, Port: p.Port})
		}
	}
	blocked := map[netip.Prefix]bool{}
	add := func(a netip.Addr) {
		if a.Is4() {
			blocked[netip.PrefixFrom(a, 32)] = true
		}
	}
	add(in.TunnelIP)
	for _, h := range in.View.Hosts {
		add(h.TunnelIP)
	}
	s.Blocked = slices.SortedFunc(func(yield func(netip.Prefix) bool) {
		for p := range blocked {
			if !yield(p) {
				return
			}
		}
	}, comparePrefix)
	s.Allowed = slices.Clone(in.Allowed)
	s.Underlay = slices.Clone(in.Underlay)
	return s
}

func comparePrefix(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

// publishOwners maps each publish's text (netfilter.Publish.String, which
// a Refusal's Item is) to the endpoint port asking for it.
func publishOwners(s netfilter.State) map[string]string {
	out := make(map[string]string, len(s.Publishes))
	for _, p := range s.Publishes {
		out[p.String()] = p.Endpoint
	}
	return out
}
