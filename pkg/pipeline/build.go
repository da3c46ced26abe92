package pipeline

import (
	"cmp"
	"net"
	"net/netip"
	"slices"

	"github.com/ofctl-agent/ofctl-agent/pkg/arp"
	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
)

// Build computes every flow of the desired state. The same state, whatever
// the order of its lists, gives byte-identical flows in the same order
// (flow.Sort: table, descending priority, canonical match). Objects that
// cannot be programmed are left out (the tests' validateState says why); when two
// objects would produce the same flow key, the first in sorted input order
// wins. Without a tunnel port, networks, remote hosts and remote endpoints
// have no flows: nothing is reachable.
func Build(s State) []flow.Flow {
	networks := sorted(s.Networks, func(a, b Network) int { return cmp.Compare(a.Name, b.Name) })
	nets := map[string]Network{}
	for _, n := range networks {
		if _, dup := nets[n.Name]; !dup {
			nets[n.Name] = n
		}
	}
	hosts := sorted(s.Hosts, func(a, b RemoteHost) int { return cmp.Compare(a.Name, b.Name) })
	byName := map[string]RemoteHost{}
	for _, h := range hosts {
		if _, dup := byName[h.Name]; !dup {
			byName[h.Name] = h
		}
	}
	out := FixedFlows(s.TunnelPort)
	out = append(out, localFlows(s.Endpoints, nets)...)
	if s.TunnelPort == 0 { // nothing is reachable through a tunnel
		return dedupe(out)
	}
	for _, n := range networks {
		out = append(out, NetworkFlows(n)...)
	}
	for _, h := range hosts {
		out = append(out, RemoteHostFlows(h, networks)...)
	}
	for _, e := range sorted(s.RemoteEndpoints, compareRemote) {
		n, okN := nets[e.Network]
		h, okH := byName[e.Host]
		if okN && okH {
			out = append(out, RemoteEndpointFlows(n, h, e)...)
		}
	}
	return dedupe(out)
}

func localFlows(endpoints []Endpoint, nets map[string]Network) []flow.Flow {
	var out []flow.Flow
	for _, e := range sorted(endpoints, func(a, b Endpoint) int { return cmp.Compare(a.Port, b.Port) }) {
		if n, ok := nets[e.Network]; ok {
			out = append(out, EndpointFlows(n, e)...)
		}
	}
	return out
}

func sorted[T any](s []T, cmp func(a, b T) int) []T {
	s = slices.Clone(s)
	slices.SortStableFunc(s, cmp)
	return s
}

func compareRemote(a, b RemoteEndpoint) int {
	if c := cmp.Compare(a.Network, b.Network); c != 0 {
		return c
	}
	return a.IP.Compare(b.IP)
}

// dedupe keeps the first flow of each key, then sorts.
func dedupe(fs []flow.Flow) []flow.Flow {
	seen := make(map[flow.Key]bool, len(fs))
	out := fs[:0]
	for _, f := range fs {
		if k := f.Key(); !seen[k] {
			seen[k] = true
			out = append(out, f)
		}
	}
	flow.Sort(out)
	return out
}

// FixedFlows are the flows that belong to no object: every table's miss
// flow, as declared, and the classifier's and tunnel_egress's own flows.
// tunnelPort 0 means no tunnel.
func FixedFlows(tunnelPort uint32) []flow.Flow {
	c := FixedCookie()
	var own []flow.Flow
	if tunnelPort != 0 {
		own = []flow.Flow{
			{Table: Classifier.ID(), Priority: priorityTunnelPort, Cookie: c,
				Match: flow.NewMatch(flow.FieldInPort.Is(uint64(tunnelPort))), Actions: []flow.Action{gotoTable(TunnelIngress)}},
			tunnels().EgressFlow(tunnelPort, c),
		}
	}
	return withMissFlows(own, c)
}

// withMissFlows adds each declared table's miss flow to own, table by table
// in pipeline order: the miss flow first, then the table's flows of own. A
// flow of own with the miss flow's key (priority 0, empty match: the
// tunnel output of tunnel_egress) replaces it.
func withMissFlows(own []flow.Flow, cookie uint64) []flow.Flow {
	out := make([]flow.Flow, 0, len(declared)+len(own))
	for _, t := range Tables() {
		miss := flow.Flow{Table: t.ID, Priority: priorityMiss, Cookie: cookie}
		if t.MissTo != "" {
			miss.Actions = []flow.Action{gotoTable(t.MissTo)}
		}
		var rest []flow.Flow
		for _, f := range own {
			switch {
			case f.Table != t.ID:
			case f.Key() == miss.Key():
				miss = f
			default:
				rest = append(rest, f)
			}
		}
		out = append(append(out, miss), rest...)
	}
	return out
}

// NetworkFlows are a network's own flows: accepting it from the tunnel.
func NetworkFlows(n Network) []flow.Flow {
	if !validVNI(n.VNI) {
		return nil
	}
	return []flow.Flow{tunnels().NetworkFlow(n.VNI, n.Cookie())}
}

// EndpointFlows are a local endpoint's five flows (six when its MAC is not
// derived from its IP): three in spoof_guard, its ARP answer, its delivery,
// and the delivery of tunneled packets sent to its derived MAC. A gateway
// has the same flows, its spoof guard matching its MAC but no IP.
func EndpointFlows(n Network, e Endpoint) []flow.Flow {
	if !validVNI(n.VNI) || !validAddrs(e.IP, e.MAC) || e.OFPort == 0 || e.OFPort > maxOFPort {
		return nil
	}
	c := e.Cookie()
	inPort := flow.FieldInPort.Is(uint64(e.OFPort))
	guard := func(next Table, fms ...flow.FieldMatch) flow.Flow {
		return flow.Flow{Table: SpoofGuard.ID(), Priority: priorityAllow, Cookie: c,
			Match:   flow.NewMatch(fms...).With(inPort, flow.FieldEthSrc.MAC(e.MAC)),
			Actions: []flow.Action{regNetwork.Load(n.VNI), gotoTable(next)}}
	}
	ipGuard := guard(L2Forward, ethIPv4, flow.FieldIPv4Src.Addr(e.IP))
	arpGuard := guard(ARPResponder, ethARP, flow.FieldArpSpa.Addr(e.IP), flow.FieldArpSha.MAC(e.MAC))
	if e.Gateway {
		// The host routes the outside world's packets through its gateway
		// (any source IP) and may ask for a container's MAC from any of
		// its addresses; its MAC stays pinned.
		ipGuard = guard(L2Forward, ethIPv4)
		arpGuard = guard(ARPResponder, ethARP, flow.FieldArpSha.MAC(e.MAC))
	}
	out := []flow.Flow{
		ipGuard,
		arpGuard,
		{Table: SpoofGuard.ID(), Priority: priorityPortDrop, Cookie: WithRole(c, RoleSpoofDrop), Match: flow.NewMatch(inPort)},
		responder().Address(n.VNI, e.IP, e.MAC, c),
		{Table: L2Forward.ID(), Priority: priorityEndpoint, Cookie: c,
			Match:   flow.NewMatch(flow.FieldEthDst.MAC(e.MAC), regNetwork.Is(n.VNI)),
			Actions: []flow.Action{flow.Output{Port: e.OFPort}}},
	}
	if !arp.IsDerived(e.MAC, e.IP) {
		// Remote hosts in static mode know only the derived MAC.
		out = append(out, flow.Flow{Table: L2Forward.ID(), Priority: priorityRewrite, Cookie: c,
			Match:   flow.NewMatch(flow.FieldEthDst.MAC(arp.DerivedMAC(e.IP)), regNetwork.Is(n.VNI), markFromTunnel.Match()),
			Actions: []flow.Action{flow.FieldEthDst.SetMAC(e.MAC), flow.Output{Port: e.OFPort}}})
	}
	return out
}

// RemoteHostFlows are a remote host's flows: accepting its tunnel traffic,
// and for each network in which it has a range, one ARP answer and one
// forwarding flow for the whole range (derived MACs).
func RemoteHostFlows(h RemoteHost, networks []Network) []flow.Flow {
	if !h.TunnelIP.Is4() {
		return nil
	}
	c := h.Cookie()
	out := []flow.Flow{tunnels().HostFlow(h.TunnelIP, c)}
	for _, n := range networks {
		p, ok := h.Ranges[n.Name]
		if !ok || !validVNI(n.VNI) || !p.IsValid() || !p.Addr().Is4() || !n.Subnet.Contains(p.Addr()) {
			continue
		}
		mac, mask := arp.DerivedRange(p)
		out = append(out,
			responder().Range(n.VNI, p, c),
			flow.Flow{Table: L2Forward.ID(), Priority: uint16(priorityRangeBase + p.Bits()), Cookie: c,
				Match:   flow.NewMatch(flow.FieldEthDst.MACMasked(mac, mask), regNetwork.Is(n.VNI), markFromLocal.Match()),
				Actions: tunnels().ToHost(h.TunnelIP)})
	}
	return out
}

// RemoteEndpointFlows are a remote endpoint's two flows: its ARP answer and
// forwarding to its host.
func RemoteEndpointFlows(n Network, h RemoteHost, e RemoteEndpoint) []flow.Flow {
	if !validVNI(n.VNI) || !validAddrs(e.IP, e.MAC) || !h.TunnelIP.Is4() {
		return nil
	}
	c := e.Cookie()
	return []flow.Flow{
		responder().Address(n.VNI, e.IP, e.MAC, c),
		{Table: L2Forward.ID(), Priority: priorityRemote, Cookie: c,
			Match:   flow.NewMatch(flow.FieldEthDst.MAC(e.MAC), regNetwork.Is(n.VNI), markFromLocal.Match()),
			Actions: tunnels().ToHost(h.TunnelIP)},
	}
}

// Ethernet types matched by the pipeline's flows.
var (
	ethIPv4 = flow.FieldEthType.Is(uint64(flow.EthTypeIPv4))
	ethARP  = flow.FieldEthType.Is(uint64(flow.EthTypeARP))
)

func validVNI(v uint32) bool { return v >= 1 && v <= MaxVNI }

func validAddrs(ip netip.Addr, mac net.HardwareAddr) bool {
	return ip.Is4() && len(mac) == 6 && mac[0]&1 == 0
}
