package cluster

import (
	"bytes"
	"cmp"
	"context"
	"iter"
	"maps"
	"net"
	"net/netip"
	"slices"
)

// MinVNI and MaxVNI bound a network's virtual network identifier. The GRE key
// is 32 bits wide, but the range is kept to 24 bits so that the same
// identifiers stay valid for VXLAN or Geneve tunnels.
const (
	MinVNI = 1
	MaxVNI = 1<<24 - 1
)

// View is one consistent picture of the cluster. Networks and Hosts are
// sorted by name, Endpoints by network then IP (see Normalize), so equal
// inputs give equal views. A published View is shared: treat it as read-only.
type View struct {
	Networks  []Network
	Hosts     []Host
	Endpoints []RemoteEndpoint // filled by backends that learn endpoints (etcd); the static file has none
	// Set, if not nil, holds the endpoints instead of Endpoints (which is
	// then empty): the etcd source keeps them in a set shared between
	// views, so that a view costs what changed, not a copy of every
	// endpoint. Read them with EndpointCount, AllEndpoints, LookupEndpoint.
	Set *EndpointSet

	// Revision increases with every distinct view a Source publishes. The
	// static backend counts from 1; an etcd backend uses the store revision.
	Revision int64

	// Scoped views hold the remote endpoints of the networks in Loaded
	// alone (sorted): a Source that is a Scoper loads a network's
	// endpoints while it is told the network is of interest. Unscoped
	// views hold every network's (Loaded unused).
	Scoped bool
	Loaded []string

	// Delta, if set, is what changed from the view of revision Delta.From
	// to this one, as the Source knows it: a reader holding that view can
	// apply it instead of computing Diff, which walks both views. Sources
	// set it with Offer; nil means "use Diff".
	Delta *Delta
}

// Network is an isolated layer-2 segment carried in tunnels under its VNI.
type Network struct {
	Name   string
	VNI    uint32
	Subnet netip.Prefix // IPv4, canonical (no host bits set)
	// NoNAT is the file's "nat: false": the network's traffic to the
	// outside is routed with the containers' own addresses instead of
	// masqueraded to the host's (the outside must route the subnet back).
	NoNAT bool
	// NoGateway turns the hosts' gateways off for the network (the file's
	// "gateway: false"): no gateway port, containers get no default route.
	NoGateway bool
}

// Host is a node running the agent: the tunnel endpoint other hosts send to,
// and the address range it hands out in each network.
type Host struct {
	Name     string
	TunnelIP netip.Addr
	Ranges   map[string]netip.Prefix // network name -> range inside that network's subnet
	// Gateways are the host's gateway addresses set in the view (network
	// name -> address); a network with none takes the default (pkg/gateway).
	Gateways map[string]netip.Addr
}

// RemoteEndpoint is a container interface on another host (etcd mode).
type RemoteEndpoint struct {
	Network string
	IP      netip.Addr
	MAC     net.HardwareAddr
	Host    string // the Host whose tunnel reaches it
	Name    string // its DNS name (endpoint.KeyName), "" for none
}

// Source delivers the cluster view to the agent.
type Source interface {
	// Run watches the backend until ctx ends, then returns nil; it returns
	// an error only when it cannot watch at all.
	Run(ctx context.Context) error
	// Updates carries views, latest wins: a slow reader skips views it
	// had no time to take but always gets the newest. Never closed.
	Updates() <-chan View
	// Current returns the last good view, if there is one.
	Current() (View, bool)
}

// Scoper is a Source that loads the remote endpoints of some networks
// only (Views are then Scoped): those last set with SetInterest. It never
// blocks; a view whose Loaded holds the networks follows once they are in.
type Scoper interface {
	SetInterest(networks []string)
}

// IsLoaded reports whether the view holds the remote endpoints of network
// (always, for an unscoped view).
func (v View) IsLoaded(network string) bool {
	if !v.Scoped {
		return true
	}
	_, ok := slices.BinarySearch(v.Loaded, network)
	return ok
}

// Normalize sorts the view's lists into their canonical order.
func (v *View) Normalize() {
	slices.SortFunc(v.Networks, func(a, b Network) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(v.Hosts, func(a, b Host) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(v.Endpoints, compareEndpoints)
}

func compareEndpoints(a, b RemoteEndpoint) int {
	if c := cmp.Compare(a.Network, b.Network); c != 0 {
		return c
	}
	return a.IP.Compare(b.IP)
}

// EndpointCount is the number of remote endpoints.
func (v View) EndpointCount() int {
	if v.Set != nil {
		return v.Set.Len()
	}
	return len(v.Endpoints)
}

// AllEndpoints yields the remote endpoints in order, from Set or Endpoints.
func (v View) AllEndpoints() iter.Seq[RemoteEndpoint] {
	if v.Set != nil {
		return v.Set.All()
	}
	return slices.Values(v.Endpoints)
}

// EndpointList returns the remote endpoints as a slice: Endpoints itself,
// or a copy of Set's (O(n)).
func (v View) EndpointList() []RemoteEndpoint {
	if v.Set != nil {
		return v.Set.Slice()
	}
	return v.Endpoints
}

// LookupEndpoint returns the view's endpoint of an address (the view must
// be normalized).
func (v View) LookupEndpoint(network string, ip netip.Addr) (RemoteEndpoint, bool) {
	if v.Set != nil {
		return v.Set.Lookup(network, ip)
	}
	i, ok := slices.BinarySearchFunc(v.Endpoints, 0, func(e RemoteEndpoint, _ int) int { return compareKey(e, network, ip) })
	if !ok {
		return RemoteEndpoint{}, false
	}
	return v.Endpoints[i], true
}

// Network returns the network called name. The view must be normalized.
func (v View) Network(name string) (Network, bool) {
	i, ok := slices.BinarySearchFunc(v.Networks, name, func(n Network, s string) int { return cmp.Compare(n.Name, s) })
	if !ok {
		return Network{}, false
	}
	return v.Networks[i], true
}

// Host returns the host called name. The view must be normalized.
func (v View) Host(name string) (Host, bool) {
	i, ok := slices.BinarySearchFunc(v.Hosts, name, func(h Host, s string) int { return cmp.Compare(h.Name, s) })
	if !ok {
		return Host{}, false
	}
	return v.Hosts[i], true
}

// Equal reports whether two views hold the same networks, hosts and
// endpoints in the same order. The revision is not compared.
func (v View) Equal(o View) bool {
	return slices.Equal(v.Networks, o.Networks) &&
		slices.EqualFunc(v.Hosts, o.Hosts, Host.Equal) &&
		(v.Set == o.Set && slices.EqualFunc(v.Endpoints, o.Endpoints, RemoteEndpoint.Equal) ||
			v.EndpointCount() == o.EndpointCount() && equalSeq(v.AllEndpoints(), o.AllEndpoints()))
}

// Equal reports whether two hosts are the same in every field.
func (h Host) Equal(o Host) bool {
	return h.Name == o.Name && h.TunnelIP == o.TunnelIP && maps.Equal(h.Ranges, o.Ranges) && maps.Equal(h.Gateways, o.Gateways)
}

// Equal reports whether two endpoints are the same in every field.
func (e RemoteEndpoint) Equal(o RemoteEndpoint) bool {
	return e.Network == o.Network && e.IP == o.IP && e.Host == o.Host && e.Name == o.Name && bytes.Equal(e.MAC, o.MAC)
}

func equalSeq(a, b iter.Seq[RemoteEndpoint]) bool {
	next, stop := iter.Pull(b)
	defer stop()
	for e := range a {
		o, ok := next()
		if !ok || !e.Equal(o) {
			return false
		}
	}
	_, more := next()
	return !more
}
