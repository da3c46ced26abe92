package ipam

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Held is one allocation as Allocations lists it.
type Held struct {
	Network string
	IP      netip.Addr
	Owner   string
	// Port is the port claiming the address (the first by name when
	// several do); "" while the allocation waits for its port.
	Port string
	// Expires is when the allocation lapses without a port (zero: a port
	// holds the address).
	Expires time.Time
}

// Allocations lists the allocations of network ("": every network) whose
// owner starts with ownerPrefix ("": all), by network and address. Those
// whose time ran out without a port are dropped first. Addresses held by
// ports alone (no allocation: a port made before the agent started, or an
// address asked for without the allocator) are not listed.
func (a *Allocator) Allocations(network, ownerPrefix string) []Held {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.expireLocked(a.now())
	var out []Held
	for k, al := range a.allocs {
		if network != "" && k.network != network || !strings.HasPrefix(al.owner, ownerPrefix) {
			continue
		}
		h := Held{Network: k.network, IP: k.ip, Owner: al.owner}
		if ps := a.claims[k]; len(ps) > 0 {
			h.Port = ps[0]
		} else {
			h.Expires = al.expires
		}
		out = append(out, h)
	}
	slices.SortFunc(out, func(x, y Held) int {
		return cmp.Or(strings.Compare(x.Network, y.Network), x.IP.Compare(y.IP))
	})
	return out
}

// ReleaseOwner gives back owner's allocation in network, whatever its
// address, and returns that address (ok false: owner held none). A port
// claiming the address keeps it. It is how a client that never learnt its
// address (killed between Allocate and its port) is cleaned up.
func (a *Allocator) ReleaseOwner(network, owner string) (ip netip.Addr, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k, held := a.owners[ownerKey{network, owner}]
	if !held {
		return netip.Addr{}, false
	}
	a.dropLocked(k, a.allocs[k])
	return k.ip, true
}

// NetworkStats is what the allocator holds in one network.
type NetworkStats struct {
	Ports   int    // addresses held by ports on the bridge
	Pending int    // allocations waiting for their port
	Expired uint64 // allocations dropped by the TTL without a port, since the start
}

// Stats is what the allocator holds, per network of the cluster view
// (ports claiming addresses of other networks are not counted: their
// network names are unchecked input). Nil before the first SetView.
func (a *Allocator) Stats() map[string]NetworkStats {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.haveView {
		return nil
	}
	a.expireLocked(a.now())
	st := make(map[string]NetworkStats, len(a.view.Networks))
	for _, n := range a.view.Networks {
		st[n.Name] = NetworkStats{Expired: a.expired[n.Name]}
	}
	for k := range a.claims {
		if s, ok := st[k.network]; ok {
			s.Ports++
			st[k.network] = s
		}
	}
	for k := range a.allocs {
		if s, ok := st[k.network]; ok && len(a.claims[k]) == 0 {
			s.Pending++
			st[k.network] = s
		}
	}
	return st
}

// Reown hands the allocation of ip in network to owner, for a caller that
// learns whom an address is for only after allocating it (Docker: its IPAM
// call names no endpoint, CreateEndpoint does). false: ip has no
// allocation, or owner holds another address in the network.
func (a *Allocator) Reown(network string, ip netip.Addr, owner string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := addrKey{network, ip}
	al, ok := a.allocs[k]
	if !ok || owner == "" {
		return false
	}
	nk := ownerKey{network, owner}
	if cur, holds := a.owners[nk]; holds {
		return cur == k
	}
	if a.owners[ownerKey{network, al.owner}] == k {
		delete(a.owners, ownerKey{network, al.owner})
	}
	al.owner = owner
	a.owners[nk] = k
	return true
}
