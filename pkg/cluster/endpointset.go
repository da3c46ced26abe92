package cluster

import (
	"iter"
	"net/netip"
	"slices"
	"sort"
)

// EndpointSet is an immutable set of remote endpoints sorted by network,
// then IP, at most one per address. It is stored in chunks shared between
// versions: With makes a new set that copies only the chunks a change
// touches and the chunk table, so that a change costs O(changes x chunk +
// endpoints / chunk) instead of a copy of every endpoint (at 100,000
// endpoints: ~13 KB instead of ~10 MB). The etcd source publishes one per
// view (View.Set). An endpoint is stored in 72 bytes (setEntry), where a
// RemoteEndpoint takes 96 and its MAC an allocation of its own; the MAC
// of an endpoint read from the set shares the set's memory: read-only.
type EndpointSet struct {
	chunks [][]setEntry // each sorted, non-empty, at most 2*chunkSize
	n      int
}

const chunkSize = 128

// setEntry is an endpoint in the set: an IPv4 address with a 6-byte MAC
// (every endpoint of a valid view) inline, any other kept whole in other.
type setEntry struct {
	network, host, name string
	other               *RemoteEndpoint
	ip                  [4]byte
	mac                 [6]byte
}

func toEntry(e RemoteEndpoint) setEntry {
	if !e.IP.Is4() || len(e.MAC) != 6 {
		whole := e // on the heap only on this path
		return setEntry{network: e.Network, other: &whole}
	}
	return setEntry{network: e.Network, host: e.Host, name: e.Name, ip: e.IP.As4(), mac: [6]byte(e.MAC)}
}

// endpoint returns the entry as a RemoteEndpoint; its MAC is the entry's.
func (x *setEntry) endpoint() RemoteEndpoint {
	if x.other != nil {
		return *x.other
	}
	return RemoteEndpoint{Network: x.network, IP: netip.AddrFrom4(x.ip), MAC: x.mac[:], Host: x.host, Name: x.name}
}

func (x *setEntry) addr() netip.Addr {
	if x.other != nil {
		return x.other.IP
	}
	return netip.AddrFrom4(x.ip)
}

// compareEntry orders an entry against a key, as compareKey.
func compareEntry(x *setEntry, network string, ip netip.Addr) int {
	if x.network != network {
		if x.network < network {
			return -1
		}
		return 1
	}
	return x.addr().Compare(ip)
}

// NewEndpointSet makes a set of eps, which must be sorted by network then
// IP with one entry per address (Normalize's order).
func NewEndpointSet(eps []RemoteEndpoint) *EndpointSet {
	s := &EndpointSet{n: len(eps)}
	all := make([]setEntry, len(eps))
	for i, e := range eps {
		all[i] = toEntry(e)
	}
	for len(all) > 0 {
		k := min(chunkSize, len(all))
		s.chunks = append(s.chunks, all[:k:k])
		all = all[k:]
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
			for i := range c {
				if !yield(c[i].endpoint()) {
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
		for i := range c {
			out = append(out, c[i].endpoint())
		}
	}
	return out
}

// chunkFor is the index of the chunk where an endpoint of that key is or
// would be inserted.
func (s *EndpointSet) chunkFor(network string, ip netip.Addr) int {
	i, _ := slices.BinarySearchFunc(s.chunks, 0, func(c []setEntry, _ int) int {
		// a chunk is "before" the key if its last entry is before it
		return compareEntry(&c[len(c)-1], network, ip)
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
	j, ok := search(c, network, ip)
	if !ok {
		return RemoteEndpoint{}, false
	}
	return c[j].endpoint(), true
}

// search finds the entry of a key in a sorted chunk.
func search(c []setEntry, network string, ip netip.Addr) (int, bool) {
	i := sort.Search(len(c), func(i int) bool { return compareEntry(&c[i], network, ip) >= 0 })
	return i, i < len(c) && compareEntry(&c[i], network, ip) == 0
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
	out := &EndpointSet{n: s.n, chunks: make([][]setEntry, 0, len(s.chunks)+1)}
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
			if ci < len(s.chunks)-1 && compareEntry(&c[len(c)-1], updates[j].Network, updates[j].IP) < 0 {
				break
			}
		}
		nc := slices.Clone(c)
		for _, u := range updates[i:j] {
			k, found := search(nc, u.Network, u.IP)
			switch {
			case u.New != nil && found:
				nc[k] = toEntry(*u.New)
			case u.New != nil:
				nc = slices.Insert(nc, k, toEntry(*u.New))
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
