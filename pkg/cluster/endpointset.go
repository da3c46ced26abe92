package cluster

import (
	"iter"
	"net/netip"
	"slices"
)

// EndpointSet is an immutable set of remote endpoints sorted by network,
// then IP, at most one per address. It is stored in chunks shared between
// versions: With makes a new set that copies only the chunks a change
// touches and the chunk table, so that a change costs O(changes x chunk +
// endpoints / chunk) instead of a copy of every endpoint (at 100,000
// endpoints: ~13 KB instead of ~10 MB). The etcd source publishes one per
// view (View.Set).
type EndpointSet struct {
	chunks [][]RemoteEndpoint // each sorted, non-empty, at most 2*chunkSize
	n      int
}

const chunkSize = 128

// NewEndpointSet makes a set of eps, which must be sorted by network then
// IP with one entry per address (Normalize's order); it is not copied.
func NewEndpointSet(eps []RemoteEndpoint) *EndpointSet {
	s := &EndpointSet{n: len(eps)}
	for len(eps) > 0 {
		k := min(chunkSize, len(eps))
		s.chunks = append(s.chunks, eps[:k:k])
		eps = eps[k:]
	}
	return s
}

// Len is the number of endpoints; a nil set is empty.
func (s *EndpointSet) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// All yields the endpoints in order.
func (s *EndpointSet) All() iter.Seq[RemoteEndpoint] {
	return func(yield func(RemoteEndpoint) bool) {
		if s == nil {
			return
		}
		for _, c := range s.chunks {
			for _, e := range c {
				if !yield(e) {
					return
				}
			}
		}
	}
}

// Slice returns the endpoints as one new slice (O(n): for tests and
// callers that need the whole list once).
func (s *EndpointSet) Slice() []RemoteEndpoint {
	if s == nil {
		return nil
	}
	out := make([]RemoteEndpoint, 0, s.n)
	for _, c := range s.chunks {
		out = append(out, c...)
	}
	return out
}

// chunkFor is the index of the chunk where an endpoint of that key is or
// would be inserted.
func (s *EndpointSet) chunkFor(network string, ip netip.Addr) int {
	i, _ := slices.BinarySearchFunc(s.chunks, 0, func(c []RemoteEndpoint, _ int) int {
		// a chunk is "before" the key if its last entry is before it
		return compareKey(c[len(c)-1], network, ip)
	})
	return min(i, len(s.chunks)-1)
}

func compareKey(e RemoteEndpoint, network string, ip netip.Addr) int {
	if e.Network != network {
		if e.Network < network {
			return -1
		}
		return 1
	}
	return e.IP.Compare(ip)
}

// Lookup returns the endpoint of an address.
func (s *EndpointSet) Lookup(network string, ip netip.Addr) (RemoteEndpoint, bool) {
	if s.Len() == 0 {
		return RemoteEndpoint{}, false
	}
	c := s.chunks[s.chunkFor(network, ip)]
	j, ok := slices.BinarySearchFunc(c, 0, func(e RemoteEndpoint, _ int) int { return compareKey(e, network, ip) })
	if !ok {
		return RemoteEndpoint{}, false
	}
	return c[j], true
}

// EndpointUpdate sets (New non-nil) or removes (New nil) the endpoint of
// one address.
type EndpointUpdate struct {
	Network string
	IP      netip.Addr
	New     *RemoteEndpoint
}

// With returns the set with the updates applied; s is not changed. The
// updates must be sorted by network then IP, one per address.
func (s *EndpointSet) With(updates []EndpointUpdate) *EndpointSet {
	if s == nil {
		s = &EndpointSet{}
	}
	if len(updates) == 0 {
		return s
	}
	out := &EndpointSet{n: s.n, chunks: make([][]RemoteEndpoint, 0, len(s.chunks)+1)}
	if len(s.chunks) == 0 {
		var eps []RemoteEndpoint
		for _, u := range updates {
			if u.New != nil {
				eps = append(eps, *u.New)
			}
		}
		return NewEndpointSet(eps)
	}
	next := 0 // first chunk of s not yet in out
	for i := 0; i < len(updates); {
		ci := s.chunkFor(updates[i].Network, updates[i].IP)
		out.chunks = append(out.chunks, s.chunks[next:ci]...)
		// the updates that fall in chunk ci: up to its last key (all the
		// rest for the last chunk)
		c := s.chunks[ci]
		j := i + 1
		for ; j < len(updates); j++ {
			if ci < len(s.chunks)-1 && compareKey(c[len(c)-1], updates[j].Network, updates[j].IP) < 0 {
				break
			}
		}
		nc := slices.Clone(c)
		for _, u := range updates[i:j] {
			k, found := slices.BinarySearchFunc(nc, 0, func(e RemoteEndpoint, _ int) int { return compareKey(e, u.Network, u.IP) })
			switch {
			case u.New != nil && found:
				nc[k] = *u.New
			case u.New != nil:
				nc = slices.Insert(nc, k, *u.New)
				out.n++
			case found:
				nc = slices.Delete(nc, k, k+1)
				out.n--
			}
		}
		for len(nc) > 2*chunkSize { // split a chunk grown too large
			out.chunks = append(out.chunks, nc[:chunkSize:chunkSize])
			nc = nc[chunkSize:]
		}
		if len(nc) > 0 {
			out.chunks = append(out.chunks, nc)
		}
		next, i = ci+1, j
	}
	out.chunks = append(out.chunks, s.chunks[next:]...)
	return out
}
