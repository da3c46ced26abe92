package cluster

import (
	"cmp"
	"net/netip"
	"slices"
)

// RangeIndex says which host's range holds an address. In the static view
// each host hands out the addresses of its own ranges and every other host
// sends traffic for them to it, so an address inside host H's range belongs
// to H: no other host may give it to a local endpoint (the agent refuses
// such an endpoint, attach refuses such an --ip). Addresses outside every
// range belong to nobody: a host may use them, and in the static view only
// that host reaches them. Hosts published through etcd have no ranges, so
// there the index is empty and the rule does not apply: an address is
// unique across hosts by etcd's claim rule instead (docs/etcd.md).
type RangeIndex struct {
	byNet map[string][]heldRange // per network, sorted by first address
}

type heldRange struct {
	p    netip.Prefix
	host string
}

// NewRangeIndex indexes the ranges of hosts, which must not overlap within
// a network (Validate and the file parser refuse overlaps).
func NewRangeIndex(hosts []Host) RangeIndex {
	x := RangeIndex{byNet: map[string][]heldRange{}}
	for _, h := range hosts {
		for network, p := range h.Ranges {
			x.byNet[network] = append(x.byNet[network], heldRange{p.Masked(), h.Name})
		}
	}
	for _, rs := range x.byNet {
		slices.SortFunc(rs, func(a, b heldRange) int { return a.p.Addr().Compare(b.p.Addr()) })
	}
	return x
}

// Holder returns the host whose range in network holds ip, and that range.
func (x RangeIndex) Holder(network string, ip netip.Addr) (host string, r netip.Prefix, ok bool) {
	rs := x.byNet[network]
	// The last range starting at or before ip is the only one that can
	// hold it: ranges do not overlap.
	i, found := slices.BinarySearchFunc(rs, ip, func(r heldRange, ip netip.Addr) int { return cmp.Compare(r.p.Addr().Compare(ip), 0) })
	if !found {
		i--
	}
	if i < 0 || !rs[i].p.Contains(ip) {
		return "", netip.Prefix{}, false
	}
	return rs[i].host, rs[i].p, true
}

// Equal reports whether two indexes hold the same ranges.
func (x RangeIndex) Equal(o RangeIndex) bool {
	if len(x.byNet) != len(o.byNet) {
		return false
	}
	for n, rs := range x.byNet {
		if !slices.Equal(rs, o.byNet[n]) {
			return false
		}
	}
	return true
}
