package ipam

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
)

// share is this host's share of one network at one moment, with the
// allocator's holders (its lock held while it is used).
type share struct {
	a       *Allocator
	net     cluster.Network
	gateway netip.Addr   // this host's; invalid: none
	rng     netip.Prefix // this host's range (static mode); invalid: none
	ranged  bool         // some host has a range in the network: static mode
}

// shareLocked is this host's share of network.
func (a *Allocator) shareLocked(network string) (share, error) {
	if !a.haveView {
		return share{}, fmt.Errorf("%w: the agent has not read the bridge's ports and the cluster view yet", agentapi.ErrNotReady)
	}
	n, ok := a.view.Network(network)
	if !ok {
		return share{}, fmt.Errorf("%w %q: not in the cluster view", agentapi.ErrUnknownNetwork, network)
	}
	s := share{a: a, net: n, gateway: a.gateways[network], ranged: a.ranged[network]}
	if h, ok := a.view.Host(a.node); ok {
		s.rng = h.Ranges[network].Masked()
	}
	return s, nil
}

func (s share) lease(ip netip.Addr) Lease {
	return Lease{Network: s.net.Name, Address: netip.PrefixFrom(ip, s.net.Subnet.Bits()), Gateway: s.gateway}
}

// refusal says why ip cannot be given on this host ("": it can).
func (s share) refusal(ip netip.Addr) string {
	if why := s.unusable(ip); why != "" {
		return why
	}
	if h, r, ok := s.a.ranges.Holder(s.net.Name, ip); ok && h != s.a.node {
		return fmt.Sprintf("is in host %s's range %s: that host's to give", h, r)
	}
	if h := s.claimant(ip); h != "" {
		return "is claimed by host " + h + " (cluster view)"
	}
	return s.holder(ip)
}

// unusable says why ip is no container address of the network at all.
func (s share) unusable(ip netip.Addr) string {
	sub := s.net.Subnet
	switch {
	case !sub.Contains(ip):
		return "is outside the network's subnet " + sub.String()
	case sub.Bits() <= 30 && ip == sub.Masked().Addr():
		return "is the network address of " + sub.String()
	case sub.Bits() <= 30 && ip == last(sub):
		return "is the broadcast address of " + sub.String()
	case ip == s.gateway:
		return "is this host's gateway"
	}
	return ""
}

// holder says who holds ip on this host ("": nobody).
func (s share) holder(ip netip.Addr) string {
	k := addrKey{s.net.Name, ip}
	if ps := s.a.claims[k]; len(ps) > 0 {
		return "is held by port " + ps[0]
	}
	if al, ok := s.a.allocs[k]; ok {
		return fmt.Sprintf("is allocated to %s (until its port appears, for %v at most)", al.owner, al.expires.Sub(s.a.now()).Round(time.Second))
	}
	return ""
}

// claimant is the other host that claims ip in the view (etcd), or "".
// The view's endpoints are sorted by network, then IP.
func (s share) claimant(ip netip.Addr) string {
	if e, ok := s.a.view.LookupEndpoint(s.net.Name, ip); ok && e.Host != s.a.node {
		return e.Host
	}
	return ""
}

// pick finds a free address of the share: the lowest of this host's range
// (static mode), or the first from the node's offset in the subnet (claims
// mode).
func (s share) pick() (netip.Addr, error) {
	switch {
	case s.rng.IsValid():
		first, n := u32(s.rng.Addr()), size(s.rng)
		if n > 2 { // never the range's first and last address
			first, n = first+1, n-2
		}
		if ip, ok := s.scan(first, n, 0); ok {
			return ip, nil
		}
		return netip.Addr{}, fmt.Errorf("%w in this host's range %s of network %s", agentapi.ErrExhausted, s.rng, s.net.Name)
	case s.ranged:
		return netip.Addr{}, fmt.Errorf("%w: host %s has no range in network %s in the cluster view (give it one, or ask for an address of no host's range)",
			agentapi.ErrExhausted, s.a.node, s.net.Name)
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(s.a.node))
	n := size(s.net.Subnet)
	if ip, ok := s.scan(u32(s.net.Subnet.Addr()), n, h.Sum32()%max(n, 1)); ok {
		return ip, nil
	}
	return netip.Addr{}, fmt.Errorf("%w in network %s (%s): every address is held here or claimed by another host",
		agentapi.ErrExhausted, s.net.Name, s.net.Subnet)
}

// scan looks at the n addresses from first, starting at offset and
// wrapping around, for one nobody holds.
func (s share) scan(first, n, offset uint32) (netip.Addr, bool) {
	for i := range n {
		ip := addr(first + (offset+i)%n)
		if s.unusable(ip) == "" && s.claimant(ip) == "" && s.holder(ip) == "" {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// size is the number of addresses of p (2^32 wraps to 0: no IPv4 network
// is /0).
func size(p netip.Prefix) uint32 { return uint32(1) << (32 - p.Bits()) }

func last(p netip.Prefix) netip.Addr { return addr(u32(p.Masked().Addr()) + size(p) - 1) }
