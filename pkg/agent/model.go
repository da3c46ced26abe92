package agent

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/pkg/reconcile"
)

// model is the desired state, split into owners whose flows are rebuilt
// independently. Writers are the agent loop; Regenerate (from Sync) and
// debug readers take mu too.
type model struct {
	mu         sync.Mutex
	self       string // this node's name in the cluster view
	tunnelPort uint32
	view       cluster.View
	haveView   bool
	networks   map[string]pipeline.Network
	endpoints  map[string]pipeline.Endpoint // programmed local endpoints, by port
	rec        *reconcile.Reconciler
	onReject   func(kind string, err error)

	// bmu guards builders alone. Sync calls regenerate while holding the
	// reconciler's lock, and the loop calls the reconciler while holding mu,
	// so regenerate must not take mu: lock order is mu -> reconciler -> bmu.
	bmu      sync.Mutex
	builders map[reconcile.Owner]func() []flow.Flow
	names    map[reconcile.Owner]string // what each owner is, for people
}

func newModel(self string, rec *reconcile.Reconciler, onReject func(string, error)) *model {
	return &model{self: self, rec: rec, onReject: onReject, networks: map[string]pipeline.Network{},
		endpoints: map[string]pipeline.Endpoint{}, builders: map[reconcile.Owner]func() []flow.Flow{},
		names: map[reconcile.Owner]string{}}
}

// regenerate is reconcile.Config.Regenerate.
func (m *model) regenerate(o reconcile.Owner) []flow.Flow {
	m.bmu.Lock()
	b, ok := m.builders[o]
	m.bmu.Unlock()
	if ok {
		return b() // builders capture immutable values
	}
	return nil
}

// own makes build the source of owner o's flows (name says what o is) and
// hands them to the reconciler. Flows the reconciler refuses are reported.
func (m *model) own(o reconcile.Owner, name string, build func() []flow.Flow) {
	m.bmu.Lock()
	m.builders[o] = build
	m.names[o] = name
	m.bmu.Unlock()
	for _, err := range m.rec.Set(o, build()) {
		m.onReject("flow", err)
	}
}

func (m *model) disown(o reconcile.Owner) {
	m.bmu.Lock()
	_, ok := m.builders[o]
	delete(m.builders, o)
	delete(m.names, o)
	m.bmu.Unlock()
	if ok {
		m.rec.Set(o, nil)
	}
}

// setView replaces the cluster view and rebuilds every owner: view changes
// are rare, and the reconciler sends only the flows that differ.
func (m *model) setView(v cluster.View, active []endpoint.Endpoint) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.haveView {
		d := cluster.Diff(m.view, v)
		if len(d.NetworksAdded)+len(d.NetworksRemoved)+len(d.NetworksChanged)+
			len(d.HostsAdded)+len(d.HostsRemoved)+len(d.HostsChanged) == 0 {
			// Only remote endpoints changed (the common case with etcd):
			// work proportional to the change.
			m.view = v
			for _, e := range d.EndpointsRemoved {
				m.disown(remoteOwner(e))
			}
			for _, c := range d.EndpointsChanged {
				m.setRemoteLocked(c.New)
			}
			for _, e := range d.EndpointsAdded {
				m.setRemoteLocked(e)
			}
			return
		}
	}
	m.view, m.haveView = v, true
	m.networks = make(map[string]pipeline.Network, len(v.Networks))
	for _, n := range v.Networks {
		m.networks[n.Name] = pipeline.Network{Name: n.Name, VNI: n.VNI, Subnet: n.Subnet}
	}
	m.rebuildLocked(active)
}

// setTunnelPort records the GRE port's ofport (0: none) and rebuilds.
func (m *model) setTunnelPort(ofport uint32, active []endpoint.Endpoint) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ofport == m.tunnelPort {
		return false
	}
	m.tunnelPort = ofport
	if m.haveView {
		m.rebuildLocked(active)
	}
	return true
}

// rebuildLocked sets every owner from the current view, tunnel port and
// active endpoints, and removes owners that no longer exist.
func (m *model) rebuildLocked(active []endpoint.Endpoint) {
	want := map[reconcile.Owner]bool{}
	tp := m.tunnelPort
	fixed := reconcile.Owner("fixed")
	want[fixed] = true
	m.own(fixed, "fixed", func() []flow.Flow { return pipeline.FixedFlows(tp) })
	var networks []pipeline.Network
	for _, cn := range m.view.Networks {
		n := m.networks[cn.Name]
		networks = append(networks, n)
		o := reconcile.Owner("network/" + n.Name)
		want[o] = true
		m.own(o, "network "+n.Name, func() []flow.Flow { return onlyWithTunnel(tp, pipeline.NetworkFlows(n)) })
	}
	for _, ch := range m.view.Hosts {
		if ch.Name == m.self {
			continue
		}
		h := pipeline.RemoteHost{Name: ch.Name, TunnelIP: ch.TunnelIP, Ranges: ch.Ranges}
		o := reconcile.Owner("host/" + h.Name)
		want[o] = true
		m.own(o, "host "+h.Name, func() []flow.Flow { return onlyWithTunnel(tp, pipeline.RemoteHostFlows(h, networks)) })
	}
	for _, e := range m.view.Endpoints {
		if o, ok := m.setRemoteLocked(e); ok {
			want[o] = true
		}
	}
	m.endpoints = map[string]pipeline.Endpoint{}
	for _, ep := range active {
		if o, ok := m.setEndpointLocked(ep); ok {
			want[o] = true
		}
	}
	m.bmu.Lock()
	var gone []reconcile.Owner
	for o := range m.builders {
		if !want[o] {
			gone = append(gone, o)
		}
	}
	m.bmu.Unlock()
	for _, o := range gone {
		m.disown(o)
	}
}

func onlyWithTunnel(tunnelPort uint32, flows []flow.Flow) []flow.Flow {
	if tunnelPort == 0 {
		return nil
	}
	return flows
}

// setEndpoint programs an active endpoint, if its network is known and its
// address belongs to it; otherwise it is reported and left unprogrammed.
func (m *model) setEndpoint(ep endpoint.Endpoint) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.haveView {
		return // programmed by setView
	}
	m.setEndpointLocked(ep)
}

func (m *model) setEndpointLocked(ep endpoint.Endpoint) (reconcile.Owner, bool) {
	pe := pipeline.Endpoint{Network: ep.Network, Port: ep.Port, OFPort: ep.OFPort, MAC: ep.MAC, IP: ep.IP}
	o := endpointOwner(ep.Port)
	n, ok := m.networks[ep.Network]
	switch {
	case !ok:
		m.onReject("endpoint", &endpoint.InvalidError{Port: ep.Port, Key: endpoint.KeyNetwork, Value: ep.Network, Reason: "no such network in the cluster view"})
	case !n.Subnet.Contains(ep.IP):
		m.onReject("endpoint", &endpoint.InvalidError{Port: ep.Port, Key: endpoint.KeyIP, Value: ep.IP.String(), Reason: "outside the network's subnet " + n.Subnet.String()})
	case ep.OFPort == m.tunnelPort:
		m.onReject("endpoint", &endpoint.InvalidError{Port: ep.Port, Key: "ofport", Value: "", Reason: "is the tunnel port's"})
	default:
		m.endpoints[ep.Port] = pe
		name := fmt.Sprintf("endpoint %s (%s %s)", pe.Port, pe.Network, pe.IP)
		m.own(o, name, func() []flow.Flow { return pipeline.EndpointFlows(n, pe) })
		return o, true
	}
	delete(m.endpoints, ep.Port)
	m.disown(o)
	return o, false
}

// Owners are unique names (reconcile.Owner); cookies carry only a hash.
func endpointOwner(port string) reconcile.Owner { return reconcile.Owner("endpoint/" + port) }

func remoteOwner(e cluster.RemoteEndpoint) reconcile.Owner {
	return reconcile.Owner("remote-endpoint/" + e.Network + "/" + e.IP.String())
}

// setRemoteLocked programs a remote endpoint (etcd mode). One on this host
// is the view's copy of a local endpoint: nothing to program for it.
func (m *model) setRemoteLocked(e cluster.RemoteEndpoint) (reconcile.Owner, bool) {
	o := remoteOwner(e)
	n, okN := m.networks[e.Network]
	h, okH := m.view.Host(e.Host)
	switch {
	case e.Host == m.self:
	case !okN || !okH:
		m.onReject("endpoint", fmt.Errorf("remote endpoint %s/%s: unknown network or host %q", e.Network, e.IP, e.Host))
	default:
		rh := pipeline.RemoteHost{Name: h.Name, TunnelIP: h.TunnelIP, Ranges: h.Ranges}
		re := pipeline.RemoteEndpoint{Network: e.Network, IP: e.IP, MAC: e.MAC, Host: e.Host}
		tp := m.tunnelPort
		m.own(o, fmt.Sprintf("remote endpoint %s %s on %s", e.Network, e.IP, e.Host), func() []flow.Flow {
			return onlyWithTunnel(tp, pipeline.RemoteEndpointFlows(n, rh, re))
		})
		return o, true
	}
	m.disown(o)
	return o, false
}

// removeEndpoint drops an endpoint's flows.
func (m *model) removeEndpoint(ep endpoint.Endpoint) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.endpoints, ep.Port)
	m.disown(endpointOwner(ep.Port))
}

// state is the model as a pipeline.State (for debugging and tests).
func (m *model) state() pipeline.State {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := pipeline.State{TunnelPort: m.tunnelPort}
	for _, cn := range m.view.Networks {
		s.Networks = append(s.Networks, m.networks[cn.Name])
	}
	for _, e := range m.endpoints {
		s.Endpoints = append(s.Endpoints, e)
	}
	for _, h := range m.view.Hosts {
		if h.Name != m.self {
			s.Hosts = append(s.Hosts, pipeline.RemoteHost{Name: h.Name, TunnelIP: h.TunnelIP, Ranges: h.Ranges})
		}
	}
	for _, e := range m.view.Endpoints {
		if e.Host != m.self {
			s.RemoteEndpoints = append(s.RemoteEndpoints, pipeline.RemoteEndpoint{Network: e.Network, IP: e.IP, MAC: e.MAC, Host: e.Host})
		}
	}
	return s
}

// Owned is one owner's desired flows and what it is.
type Owned struct {
	Owner reconcile.Owner
	Name  string // "endpoint vc1 (blue 10.100.1.10)", "host hb", "network blue", "fixed"
	Flows []flow.Flow
}

// desired returns every owner's current flows, sorted by owner name.
func (m *model) desired() []Owned {
	m.bmu.Lock()
	out := make([]Owned, 0, len(m.builders))
	for o, b := range m.builders {
		out = append(out, Owned{Owner: o, Name: m.names[o], Flows: b()})
	}
	m.bmu.Unlock()
	slices.SortFunc(out, func(a, b Owned) int { return strings.Compare(a.Name, b.Name) })
	return out
}
