package agent

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	"github.com/ofctl-agent/ofctl-agent/pkg/gateway"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/pkg/reconcile"
)

// model is the desired state, split into owners whose flows are rebuilt
// independently: the fixed flows, one per network, one per remote host
// (with the remote endpoints on it), one per local endpoint. Writers are
// the agent loop; Regenerate (from Flush and Sync) and debug readers take
// mu or bmu. Health and metrics take only epMu and bmu, never held across
// a call to the reconciler (which a Sync holds across OVS round trips).
type model struct {
	mu         sync.Mutex
	self       string // this node's name in the cluster view
	tunnelPort uint32
	view       cluster.View // the view in force (its Delta dropped)
	haveView   bool
	networks   map[string]pipeline.Network
	netList    []pipeline.Network // sorted by name; replaced, never changed
	remotes    remotes
	ranges     cluster.RangeIndex           // the hosts' ranges of the view in force
	endpoints  map[string]pipeline.Endpoint // programmed local endpoints, by port
	refused    map[string]string            // active endpoints left unprogrammed, by port: why
	localGen   uint64                       // counts re-evaluations of every local endpoint
	rec        *reconcile.Reconciler
	onReject   func(kind string, err error)

	// Remote endpoints are programmed only in the networks this host needs
	// (scoped, the default; docs/etcd.md "Flows only where needed"): need
	// is the set builders capture (replaced, never changed; nil: every
	// network), localNets counts the local endpoints that need each
	// network and localNet says which one each port counts for.
	scoped    bool
	need      map[string]bool
	localNets map[string]int
	localNet  map[string]string

	// epMu guards endpoints too: writers hold mu and epMu, readers either
	// (epMu: those that must not wait, health and metrics).
	epMu sync.Mutex

	// bmu guards builders alone. Sync calls regenerate while holding the
	// reconciler's lock, and the loop calls the reconciler while holding mu,
	// so regenerate must not take mu: lock order is mu -> reconciler -> bmu.
	bmu      sync.Mutex
	builders map[reconcile.Owner]func() []flow.Flow
	names    map[reconcile.Owner]string // what each owner is, for people
	rev      uint64                     // counts changes of builders

	// smu serialises debug readers building snap, the desired flows of
	// revision snap.rev, outside bmu.
	smu  sync.Mutex
	snap *desiredSnapshot
}

type desiredSnapshot struct {
	rev   uint64
	owned []Owned // flows only: no Failure, no Waiting
}

func newModel(self string, rec *reconcile.Reconciler, onReject func(string, error)) *model {
	return &model{self: self, rec: rec, onReject: onReject, networks: map[string]pipeline.Network{},
		remotes: newRemotes(), endpoints: map[string]pipeline.Endpoint{}, refused: map[string]string{},
		localNets: map[string]int{}, localNet: map[string]string{},
		builders: map[reconcile.Owner]func() []flow.Flow{}, names: map[reconcile.Owner]string{}}
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
	m.rev++
	m.bmu.Unlock()
	for _, err := range m.rec.Set(o, build()) {
		m.onReject("flow", err)
	}
}

// ownLater is own for a full load: the reconciler builds the flows of an
// owner it does not know yet when it sends them (reconcile.SetLater), and
// reports their errors through Config.OnLaterErrors (laterErrors).
func (m *model) ownLater(o reconcile.Owner, name string, build func() []flow.Flow) {
	m.bmu.Lock()
	m.builders[o] = build
	m.names[o] = name
	m.rev++
	m.bmu.Unlock()
	for _, err := range m.rec.SetLater(o) {
		m.onReject("flow", err)
	}
}

// laterErrors is reconcile.Config.OnLaterErrors.
func (m *model) laterErrors(_ reconcile.Owner, errs []error) {
	for _, err := range errs {
		m.onReject("flow", err)
	}
}

func (m *model) disown(o reconcile.Owner) {
	m.bmu.Lock()
	_, ok := m.builders[o]
	delete(m.builders, o)
	delete(m.names, o)
	m.rev++
	m.bmu.Unlock()
	if ok {
		m.rec.Set(o, nil)
	}
}

// setView makes v the cluster view. It applies the change from the view in
// force: v.Delta when the source says it starts there, else Diff (which
// walks both views). Only the owners concerned are rebuilt, except when
// networks change (every owner depends on them).
func (m *model) setView(v cluster.View, active []endpoint.Endpoint) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := v.Delta
	v.Delta = nil
	switch {
	case !m.haveView:
		m.loadLocked(v, active)
		return
	case v.Revision != 0 && v.Revision == m.view.Revision:
		return // the view in force, offered again
	case d == nil || d.From != m.view.Revision:
		full := cluster.Diff(m.view, v)
		d = &full
	}
	m.applyLocked(v, d, active)
}

// loadLocked builds everything from the first view.
func (m *model) loadLocked(v cluster.View, active []endpoint.Endpoint) {
	m.view, m.haveView = v, true
	m.setNetworksLocked(v.Networks)
	m.ranges = cluster.NewRangeIndex(v.Hosts)
	for i := range v.Hosts {
		m.remotes.setHost(v.Hosts[i].Name, &v.Hosts[i])
	}
	for e := range v.AllEndpoints() {
		m.addRemoteLocked(e)
	}
	m.remotes.endBatch()
	m.rebuildLocked(active)
}

// applyLocked applies one delta: networks, then hosts, then endpoints, then
// the owners of the hosts touched (or every owner, if networks changed).
func (m *model) applyLocked(v cluster.View, d *cluster.Delta, active []endpoint.Endpoint) {
	m.view = v
	netsChanged := len(d.NetworksAdded)+len(d.NetworksRemoved)+len(d.NetworksChanged) > 0
	if netsChanged {
		m.setNetworksLocked(v.Networks)
	}
	touched := map[string]bool{}
	for _, h := range d.HostsRemoved {
		m.remotes.setHost(h.Name, nil)
		touched[h.Name] = true
	}
	for _, c := range d.HostsChanged {
		m.remotes.setHost(c.New.Name, &c.New)
		touched[c.New.Name] = true
	}
	for i := range d.HostsAdded {
		m.remotes.setHost(d.HostsAdded[i].Name, &d.HostsAdded[i])
		touched[d.HostsAdded[i].Name] = true
	}
	for _, e := range d.EndpointsRemoved {
		m.remotes.remove(e)
		touched[e.Host] = true
	}
	for _, c := range d.EndpointsChanged {
		m.remotes.remove(c.Old)
		m.addRemoteLocked(c.New)
		touched[c.Old.Host], touched[c.New.Host] = true, true
	}
	for _, e := range d.EndpointsAdded {
		m.addRemoteLocked(e)
		touched[e.Host] = true
	}
	m.remotes.endBatch()
	rangesChanged := false
	if len(d.HostsAdded)+len(d.HostsRemoved)+len(d.HostsChanged) > 0 {
		ranges := cluster.NewRangeIndex(v.Hosts)
		rangesChanged = !ranges.Equal(m.ranges)
		m.ranges = ranges
	}
	if netsChanged {
		m.rebuildLocked(active)
		return
	}
	for _, name := range slices.Sorted(maps.Keys(touched)) {
		m.setHostLocked(name, false)
	}
	if rangesChanged { // a local endpoint may now be in another host's range, or out of it
		m.localGen++
		for _, ep := range active {
			m.setEndpointLocked(ep, false)
		}
	}
	m.refreshNeedLocked(true)
}

func (m *model) setNetworksLocked(nets []cluster.Network) {
	m.networks = make(map[string]pipeline.Network, len(nets))
	m.netList = make([]pipeline.Network, 0, len(nets))
	for _, n := range nets { // sorted by name
		pn := pipeline.Network{Name: n.Name, VNI: n.VNI, Subnet: n.Subnet}
		m.networks[n.Name] = pn
		m.netList = append(m.netList, pn)
	}
}

// addRemoteLocked records a remote endpoint of the view. One on this host
// is the view's copy of a local endpoint: nothing to program for it. One
// whose network or host is unknown is reported (and kept: it is programmed
// once they appear).
func (m *model) addRemoteLocked(e cluster.RemoteEndpoint) {
	if e.Host == m.self {
		return
	}
	_, okN := m.networks[e.Network]
	h := m.remotes.hosts[e.Host]
	if !okN || h == nil || !h.known {
		m.onReject("endpoint", fmt.Errorf("remote endpoint %s/%s: unknown network or host %q", e.Network, e.IP, e.Host))
	}
	if !m.remotes.add(e) {
		m.onReject("endpoint", fmt.Errorf("remote endpoint %s/%s: not an IPv4 address with a 6-byte MAC (%q)", e.Network, e.IP, e.MAC))
	}
}

// loaded reports whether the model has its first view (setTunnelPort and
// setEndpoint build nothing before).
func (m *model) loaded() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.haveView
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
	for _, n := range m.netList {
		o := reconcile.Owner("network/" + n.Name)
		want[o] = true
		m.own(o, "network "+n.Name, func() []flow.Flow { return onlyWithTunnel(tp, pipeline.NetworkFlows(n)) })
	}
	m.epMu.Lock()
	m.endpoints = map[string]pipeline.Endpoint{}
	m.epMu.Unlock()
	clear(m.localNets)
	clear(m.localNet)
	m.localGen++
	for _, ep := range active {
		if o, ok := m.setEndpointLocked(ep, true); ok {
			want[o] = true
		}
	}
	m.refreshNeedLocked(false) // the hosts below are built with it
	for _, h := range m.view.Hosts {
		if o, ok := m.setHostLocked(h.Name, true); ok {
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

// setHostLocked programs a remote host of the view with the endpoints on
// it, or removes its flows when it is this host or not in the view. With
// later, a host the reconciler does not know yet gets its flows built at
// the next Flush or Sync, once (reconcile.SetLater): a full load.
func (m *model) setHostLocked(name string, later bool) (reconcile.Owner, bool) {
	o := hostOwner(name)
	rh := m.remotes.hosts[name]
	if rh == nil || !rh.known || name == m.self {
		m.disown(o)
		return o, false
	}
	h := pipeline.RemoteHost{Name: name, TunnelIP: rh.host.TunnelIP, Ranges: rh.host.Ranges}
	tp, nets, eps, need := m.tunnelPort, m.netList, rh.eps, m.need
	what := "host " + name
	if len(eps) > 0 {
		what = fmt.Sprintf("host %s and its %d endpoints", name, len(eps))
	}
	build := func() []flow.Flow { return remoteHostFlows(tp, h, nets, eps, need) }
	if later {
		m.ownLater(o, what, build)
	} else {
		m.own(o, what, build)
	}
	return o, true
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
	m.setEndpointLocked(ep, false)
	m.refreshNeedLocked(true)
}

// With later, an endpoint the reconciler does not know yet gets its flows
// built at the next Flush or Sync (reconcile.SetLater: a full load, the
// flows of many endpoints built in parallel).
func (m *model) setEndpointLocked(ep endpoint.Endpoint, later bool) (reconcile.Owner, bool) {
	pe := pipeline.Endpoint{Network: ep.Network, Port: ep.Port, OFPort: ep.OFPort, MAC: ep.MAC, IP: ep.IP,
		Gateway: ep.Gateway && ep.Port == gateway.PortName(ep.Network)} // the role is honoured on the agent's own ports alone
	o := endpointOwner(ep.Port)
	n, ok := m.networks[ep.Network]
	if err := m.misfit(ep, n, ok); err != nil {
		if m.refused[ep.Port] != err.Error() { // reported once, not at every rebuild
			m.refused[ep.Port] = err.Error()
			m.onReject("endpoint", err)
		}
		m.epMu.Lock()
		delete(m.endpoints, ep.Port)
		m.epMu.Unlock()
		m.disown(o)
		m.countLocal(ep.Port, "")
		return o, false
	}
	m.countLocal(ep.Port, m.needs(ep))
	delete(m.refused, ep.Port)
	m.epMu.Lock()
	m.endpoints[ep.Port] = pe
	m.epMu.Unlock()
	name := fmt.Sprintf("endpoint %s (%s %s)", pe.Port, pe.Network, pe.IP)
	if pe.Gateway {
		name = fmt.Sprintf("gateway %s (%s %s)", pe.Port, pe.Network, pe.IP)
	}
	build := func() []flow.Flow { return pipeline.EndpointFlows(n, pe) }
	if later {
		m.ownLater(o, name, build)
	} else {
		m.own(o, name, build)
	}
	return o, true
}

// needs is the network whose remote endpoints a programmed local endpoint
// needs ("" none): its own, except for a gateway of a network with NAT
// (the outside's replies come back to the host that masqueraded them; a
// routed network's may come to any host's gateway, so it needs them).
func (m *model) needs(ep endpoint.Endpoint) string { return needsNetwork(m.view, ep) }

// neededNetworks is the set of networks the programmed local endpoints
// need (interest.go).
func (m *model) neededNetworks() map[string]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]bool, len(m.localNets))
	for n := range m.localNets {
		out[n] = true
	}
	return out
}

// loadedFor reports whether the view in force holds the remote endpoints
// of the network the local endpoint on port needs (a scoped source loads
// them once the network is of interest): its installed mark waits for it.
func (m *model) loadedFor(port string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.localNet[port]
	return n == "" || m.view.IsLoaded(n)
}

// countLocal records that port needs network ("" none).
func (m *model) countLocal(port, network string) {
	old, had := m.localNet[port]
	if had && old == network {
		return
	}
	if had {
		if m.localNets[old]--; m.localNets[old] <= 0 {
			delete(m.localNets, old)
		}
		delete(m.localNet, port)
	}
	if network != "" {
		m.localNet[port] = network
		m.localNets[network]++
	}
}

// refreshNeedLocked makes need follow the local endpoints' networks. When
// it changes (a network's first local endpoint came, or its last left)
// and hosts is set, every remote host's owner is rebuilt with it, before
// the caller's flush: the endpoint's flows and its network's remote
// endpoints go to OVS in one bundle, and its installed mark waits for both.
func (m *model) refreshNeedLocked(hosts bool) {
	if !m.scoped {
		return
	}
	if m.need != nil && len(m.need) == len(m.localNets) {
		same := true
		for n := range m.localNets {
			same = same && m.need[n]
		}
		if same {
			return
		}
	}
	need := make(map[string]bool, len(m.localNets))
	for n := range m.localNets {
		need[n] = true
	}
	m.need = need
	if !hosts {
		return
	}
	for _, h := range m.view.Hosts {
		m.setHostLocked(h.Name, false)
	}
}

// misfit says why a local endpoint cannot be programmed with the view in
// force (n is its network, ok whether the view has it), or nil. An address
// in another host's range belongs to that host (cluster.RangeIndex): the
// other hosts send its traffic there.
func (m *model) misfit(ep endpoint.Endpoint, n pipeline.Network, ok bool) error {
	invalid := func(key, value, reason string) error {
		return &endpoint.InvalidError{Port: ep.Port, Key: key, Value: value, Reason: reason}
	}
	switch {
	case !ok:
		return invalid(endpoint.KeyNetwork, ep.Network, "no such network in the cluster view")
	case !n.Subnet.Contains(ep.IP):
		return invalid(endpoint.KeyIP, ep.IP.String(), "outside the network's subnet "+n.Subnet.String())
	case ep.OFPort == m.tunnelPort:
		return invalid("ofport", "", "is the tunnel port's")
	}
	if h, r, held := m.ranges.Holder(ep.Network, ep.IP); held && h != m.self {
		return invalid(endpoint.KeyIP, ep.IP.String(), fmt.Sprintf("inside host %s's range %s of network %s: that host's address", h, r, ep.Network))
	}
	return nil
}

// Owners are unique names (reconcile.Owner); cookies carry only a hash.
func endpointOwner(port string) reconcile.Owner { return reconcile.Owner("endpoint/" + port) }

func hostOwner(name string) reconcile.Owner { return reconcile.Owner("host/" + name) }

// ownerRank is reconcile.Config.Rank: when two owners give a flow with the
// same key, the lower rank's flow is installed. A local endpoint outranks
// a remote host, so that its address is answered with its own MAC even
// when a remote claim for it is in the view (docs/etcd.md: a host that
// loses an IP keeps its local endpoint programmed), whichever was set
// first; remote hosts among themselves go by name.
func ownerRank(o reconcile.Owner) int {
	switch {
	case o == "fixed":
		return 0
	case strings.HasPrefix(string(o), "endpoint/"):
		return 1
	case strings.HasPrefix(string(o), "network/"):
		return 2
	}
	return 3 // host/
}

// removeEndpoint drops an endpoint's flows.
func (m *model) removeEndpoint(ep endpoint.Endpoint) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.epMu.Lock()
	delete(m.endpoints, ep.Port)
	m.epMu.Unlock()
	delete(m.refused, ep.Port)
	m.disown(endpointOwner(ep.Port))
	m.countLocal(ep.Port, "")
	m.refreshNeedLocked(true)
}

// state is the model as a pipeline.State (for debugging and tests). With
// the etcd backend and remote set it holds every remote endpoint (O(view));
// without, networks, hosts and local endpoints only (what /debug reads).
func (m *model) state(remote bool) pipeline.State {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := pipeline.State{TunnelPort: m.tunnelPort, Networks: slices.Clone(m.netList), Endpoints: m.localEndpointsLocked(),
		Hosts: make([]pipeline.RemoteHost, 0, len(m.view.Hosts))}
	for _, h := range m.view.Hosts {
		if h.Name != m.self {
			s.Hosts = append(s.Hosts, pipeline.RemoteHost{Name: h.Name, TunnelIP: h.TunnelIP, Ranges: h.Ranges})
		}
	}
	if !remote {
		return s
	}
	s.RemoteEndpoints = make([]pipeline.RemoteEndpoint, 0, m.view.EndpointCount())
	for e := range m.view.AllEndpoints() {
		if e.Host != m.self && (m.need == nil || m.need[e.Network]) {
			s.RemoteEndpoints = append(s.RemoteEndpoints, pipeline.RemoteEndpoint{Network: e.Network, IP: e.IP, MAC: e.MAC, Host: e.Host})
		}
	}
	return s
}

// desiredRevision counts changes of the desired flows (any owner's).
func (m *model) desiredRevision() uint64 {
	m.bmu.Lock()
	defer m.bmu.Unlock()
	return m.rev
}

func (m *model) localEndpointsLocked() []pipeline.Endpoint {
	out := make([]pipeline.Endpoint, 0, len(m.endpoints))
	for _, e := range m.endpoints {
		out = append(out, e)
	}
	return out
}

// LocalEndpoints returns the programmed endpoints of this host, in no
// particular order: State without the cluster's remote endpoints (for
// metrics, scraped often).
func (a *Agent) LocalEndpoints() []pipeline.Endpoint {
	a.model.epMu.Lock()
	defer a.model.epMu.Unlock()
	return a.model.localEndpointsLocked()
}

// Owned is one owner's desired flows and what it is.
type Owned struct {
	Owner reconcile.Owner
	Name  string // "endpoint vc1 (blue 10.100.1.10)", "host hb", "network blue", "fixed"
	Flows []flow.Flow
	// Failure is set when OVS refused one of its flows: none of Flows is
	// in OVS, and a retry is scheduled (reconcile/failure.go).
	Failure *reconcile.Failure
	// Waiting are those of Flows whose key another owner holds (a
	// conflict), with that owner's name: not in OVS while it holds them.
	Waiting map[flow.Key]string
}

// desired returns every owner's current flows, sorted by owner name, with
// what the reconciler knows of them (refused, waiting). The flows are built
// once per revision of the model, outside bmu (Flush and Sync need it), and
// shared by the callers until the model changes: read only. Nothing here
// waits for a Sync in progress (see reconcile's Failures and Waiting).
func (m *model) desired() []Owned {
	fails, waits := m.rec.Failures(), m.rec.Waiting() // lock order: reconciler, then bmu
	flows := m.flowSnapshot()
	var names map[reconcile.Owner]string // of the holders of waited-for keys
	if len(waits) > 0 {
		names = make(map[reconcile.Owner]string, len(flows))
		for _, ow := range flows {
			names[ow.Owner] = ow.Name
		}
	}
	out := make([]Owned, len(flows))
	for i, ow := range flows {
		if f, ok := fails[ow.Owner]; ok {
			ow.Failure = &f
		}
		for _, w := range waits[ow.Owner] {
			if ow.Waiting == nil {
				ow.Waiting = map[flow.Key]string{}
			}
			ow.Waiting[w.Key] = cmp.Or(names[w.Holder], string(w.Holder))
		}
		out[i] = ow
	}
	return out
}

// flowSnapshot returns the owners' flows of the current revision, sorted
// by owner name, built once per revision.
func (m *model) flowSnapshot() []Owned {
	m.smu.Lock()
	defer m.smu.Unlock()
	m.bmu.Lock()
	if m.snap != nil && m.snap.rev == m.rev {
		m.bmu.Unlock()
		return m.snap.owned
	}
	snap := &desiredSnapshot{rev: m.rev, owned: make([]Owned, 0, len(m.builders))}
	builds := make([]func() []flow.Flow, 0, len(m.builders))
	for o, b := range m.builders {
		snap.owned = append(snap.owned, Owned{Owner: o, Name: m.names[o]})
		builds = append(builds, b)
	}
	m.bmu.Unlock()
	for i, b := range builds { // builders capture immutable values
		snap.owned[i].Flows = b()
	}
	slices.SortFunc(snap.owned, func(a, b Owned) int { return strings.Compare(a.Name, b.Name) })
	m.snap = snap
	return snap.owned
}

// currentView is the view in force.
func (m *model) currentView() cluster.View {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.view
}

// refusal says why the active endpoint on port is not programmed ("": it
// is, or it is not active).
func (m *model) refusal(port string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.refused[port]
}

// generation changes whenever every local endpoint was judged again (a new
// view of networks or ranges, a new tunnel port): any refusal may differ.
func (m *model) generation() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.localGen
}
