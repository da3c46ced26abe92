package ipam

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
)

// DefaultTTL is how long an allocation holds its address without a port
// claiming it: long enough for a client to plumb its veth and add the port
// (milliseconds to seconds), short enough that a client that died in
// between does not keep the address for long.
const DefaultTTL = 2 * time.Minute

// Errors wrap the sentinel errors of pkg/agentapi (ErrNotReady,
// ErrUnknownNetwork, ErrAddressTaken, ErrExhausted, ErrInvalid), so the
// API answers with the right code and callers test them with errors.Is.

// Config configures an Allocator.
type Config struct {
	Node string           // this host's name in the cluster view (required)
	TTL  time.Duration    // of an allocation without a port; 0: DefaultTTL
	Now  func() time.Time // the clock (tests); nil: time.Now
	// OnExpire, when set, is told of each allocation the TTL ends (its
	// client died before its port and nobody released it: the agent logs
	// it). It is called with the allocator's lock held: it must not call
	// the allocator.
	OnExpire func(Held)
}

// Lease is an address held for its owner.
type Lease struct {
	Network string
	Address netip.Prefix // with the network's prefix length
	Gateway netip.Addr   // this host's gateway in the network; invalid: none
}

// Allocator hands out this host's addresses (see the package comment).
type Allocator struct {
	node     string
	ttl      time.Duration
	now      func() time.Time
	onExpire func(Held)

	mu       sync.Mutex
	view     cluster.View
	haveView bool
	ranges   cluster.RangeIndex
	ranged   map[string]bool         // networks in which some host has a range
	gateways map[string]netip.Addr   // this host's gateway per network
	ports    map[string]addrKey      // port -> the address it claims
	claims   map[addrKey][]string    // address -> the ports claiming it, sorted
	allocs   map[addrKey]*allocation // address -> its allocation
	owners   map[ownerKey]addrKey    // (network, owner) -> its allocation's address
	expired  map[string]uint64       // network -> allocations dropped by the TTL
}

type addrKey struct {
	network string
	ip      netip.Addr
}

type ownerKey struct{ network, owner string }

type allocation struct {
	owner   string
	expires time.Time // without a port claiming the address
}

// New returns an allocator that answers ErrNotReady until its first
// SetView.
func New(cfg Config) (*Allocator, error) {
	if cfg.Node == "" {
		return nil, fmt.Errorf("ipam: node name required")
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Allocator{node: cfg.Node, ttl: cfg.TTL, now: cfg.Now, onExpire: cfg.OnExpire, ports: map[string]addrKey{},
		claims: map[addrKey][]string{}, allocs: map[addrKey]*allocation{}, owners: map[ownerKey]addrKey{},
		expired: map[string]uint64{}}, nil
}

// SetView makes v the cluster view and gateways this host's gateway
// address per network (none: nil).
func (a *Allocator) SetView(v cluster.View, gateways map[string]netip.Addr) {
	ranged := map[string]bool{}
	for _, h := range v.Hosts {
		for n := range h.Ranges {
			ranged[n] = true
		}
	}
	ranges := cluster.NewRangeIndex(v.Hosts)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.view, a.haveView, a.ranges, a.ranged, a.gateways = v, true, ranges, ranged, gateways
}

// SetPort records the address a port on the bridge claims, from its
// Interface external_ids; a port claiming none (not an endpoint, or its
// address unreadable) holds nothing.
func (a *Allocator) SetPort(port string, externalIDs map[string]string) {
	ip, err := netip.ParseAddr(externalIDs[endpoint.KeyIP])
	network := externalIDs[endpoint.KeyNetwork]
	a.mu.Lock()
	defer a.mu.Unlock()
	old, had := a.ports[port]
	k := addrKey{network, ip}
	if had && old == k {
		return
	}
	if had {
		a.unclaimLocked(port, old)
	}
	if err != nil || network == "" {
		return
	}
	a.ports[port] = k
	ps := a.claims[k]
	if i, found := slices.BinarySearch(ps, port); !found {
		a.claims[k] = slices.Insert(ps, i, port)
	}
}

// DeletePort forgets a port: its address is free once no other port
// claims it (an allocation of it ends with it).
func (a *Allocator) DeletePort(port string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if k, ok := a.ports[port]; ok {
		a.unclaimLocked(port, k)
	}
}

func (a *Allocator) unclaimLocked(port string, k addrKey) {
	delete(a.ports, port)
	ps := a.claims[k]
	if i, found := slices.BinarySearch(ps, port); found {
		ps = slices.Delete(ps, i, i+1)
	}
	if len(ps) > 0 {
		a.claims[k] = ps
		return
	}
	delete(a.claims, k)
	if al, ok := a.allocs[k]; ok { // the port that held it went away: so does the allocation
		a.dropLocked(k, al)
	}
}

func (a *Allocator) dropLocked(k addrKey, al *allocation) {
	delete(a.allocs, k)
	if a.owners[ownerKey{k.network, al.owner}] == k {
		delete(a.owners, ownerKey{k.network, al.owner})
	}
}

// Allocate holds an address of network for owner: want when valid (it must
// be free and this host's to give), else the owner's current one, else a
// free one of this host's share.
func (a *Allocator) Allocate(network, owner string, want netip.Addr) (Lease, error) {
	if owner == "" || want.IsValid() && !want.Is4() {
		return Lease{}, fmt.Errorf("%w: allocate needs an owner and, if any, an IPv4 address", agentapi.ErrInvalid)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s, err := a.shareLocked(network)
	if err != nil {
		return Lease{}, err
	}
	now := a.now()
	a.expireLocked(now)
	ok := ownerKey{network, owner}
	cur, holds := a.owners[ok]
	if holds && (!want.IsValid() || want == cur.ip) {
		return s.lease(cur.ip), nil
	}
	ip := want
	if want.IsValid() {
		if why := s.refusal(want); why != "" {
			return Lease{}, fmt.Errorf("%w: %s in network %s %s", agentapi.ErrAddressTaken, want, network, why)
		}
	} else if ip, err = s.pick(); err != nil {
		return Lease{}, err
	}
	if holds { // moving to another address: a port claiming the old one keeps it
		a.dropLocked(cur, a.allocs[cur])
	}
	k := addrKey{network, ip}
	a.allocs[k] = &allocation{owner: owner, expires: now.Add(a.ttl)}
	a.owners[ok] = k
	return s.lease(ip), nil
}

// expireLocked drops the allocations whose time ran out without a port.
func (a *Allocator) expireLocked(now time.Time) {
	for k, al := range a.allocs {
		if len(a.claims[k]) == 0 && !now.Before(al.expires) {
			a.dropLocked(k, al)
			a.expired[k.network]++
			if a.onExpire != nil {
				a.onExpire(Held{Network: k.network, IP: k.ip, Owner: al.owner, Expires: al.expires})
			}
		}
	}
}

// Release gives back owner's allocation of ip in network. Releasing what
// is not held, or held by another owner, does nothing: releases are
// retried. A port claiming the address keeps it.
func (a *Allocator) Release(network, owner string, ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := addrKey{network, ip}
	if al, ok := a.allocs[k]; ok && al.owner == owner {
		a.dropLocked(k, al)
	}
}

// ReleaseAddress gives back the allocation of ip in network, whoever owns
// it: for callers that know addresses only (Docker's ReleaseAddress).
func (a *Allocator) ReleaseAddress(network string, ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := addrKey{network, ip}
	if al, ok := a.allocs[k]; ok {
		a.dropLocked(k, al)
	}
}

// Network returns network's subnet and this host's gateway in it (invalid:
// none).
func (a *Allocator) Network(network string) (subnet netip.Prefix, gateway netip.Addr, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, err := a.shareLocked(network)
	if err != nil {
		return netip.Prefix{}, netip.Addr{}, err
	}
	return s.net.Subnet, s.gateway, nil
}
