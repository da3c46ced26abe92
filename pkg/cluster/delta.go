package cluster

import (
	"cmp"
	"net/netip"
	"slices"
)

// Offer puts v on ch, a latest-wins channel of capacity 1, replacing a view
// the reader has not taken yet. When it replaces one, v's Delta is composed
// with that view's, so that it still starts from the view the reader
// holds. Only one goroutine may offer on ch (then the send cannot block).
func Offer(ch chan View, v View) {
	select {
	case old := <-ch:
		v.Delta = old.Delta.Then(v.Delta)
	default:
	}
	ch <- v
}

// Then returns the change from d's starting view to the view next ends
// at; next must start where d ends. It is nil when either is nil.
func (d *Delta) Then(next *Delta) *Delta {
	if d == nil || next == nil {
		return nil
	}
	out := &Delta{From: d.From}
	out.NetworksAdded, out.NetworksRemoved, out.NetworksChanged = compose(
		changes[Network, NetworkChange]{d.NetworksAdded, d.NetworksRemoved, d.NetworksChanged},
		changes[Network, NetworkChange]{next.NetworksAdded, next.NetworksRemoved, next.NetworksChanged},
		kinds[Network, NetworkChange, string]{
			key:    func(n Network) string { return n.Name },
			old:    func(c NetworkChange) Network { return c.Old },
			new:    func(c NetworkChange) Network { return c.New },
			make:   func(a, b Network) NetworkChange { return NetworkChange{a, b} },
			equal:  func(a, b Network) bool { return a == b },
			sortBy: func(a, b Network) int { return cmp.Compare(a.Name, b.Name) },
		})
	out.HostsAdded, out.HostsRemoved, out.HostsChanged = compose(
		changes[Host, HostChange]{d.HostsAdded, d.HostsRemoved, d.HostsChanged},
		changes[Host, HostChange]{next.HostsAdded, next.HostsRemoved, next.HostsChanged},
		kinds[Host, HostChange, string]{
			key:    func(h Host) string { return h.Name },
			old:    func(c HostChange) Host { return c.Old },
			new:    func(c HostChange) Host { return c.New },
			make:   func(a, b Host) HostChange { return HostChange{a, b} },
			equal:  Host.Equal,
			sortBy: func(a, b Host) int { return cmp.Compare(a.Name, b.Name) },
		})
	out.EndpointsAdded, out.EndpointsRemoved, out.EndpointsChanged = compose(
		changes[RemoteEndpoint, EndpointChange]{d.EndpointsAdded, d.EndpointsRemoved, d.EndpointsChanged},
		changes[RemoteEndpoint, EndpointChange]{next.EndpointsAdded, next.EndpointsRemoved, next.EndpointsChanged},
		kinds[RemoteEndpoint, EndpointChange, endpointKey]{
			key:    func(e RemoteEndpoint) endpointKey { return endpointKey{e.Network, e.IP} },
			old:    func(c EndpointChange) RemoteEndpoint { return c.Old },
			new:    func(c EndpointChange) RemoteEndpoint { return c.New },
			make:   func(a, b RemoteEndpoint) EndpointChange { return EndpointChange{a, b} },
			equal:  RemoteEndpoint.Equal,
			sortBy: compareEndpoints,
		})
	return out
}

type endpointKey struct {
	network string
	ip      netip.Addr
}

// changes is one list kind of a Delta.
type changes[T, C any] struct {
	added, removed []T
	changed        []C
}

// kinds tells compose how to handle one list kind.
type kinds[T, C any, K comparable] struct {
	key      func(T) K
	old, new func(C) T
	make     func(a, b T) C
	equal    func(a, b T) bool
	sortBy   func(a, b T) int
}

// span is one key's state before the first change and after the second.
type span[T any] struct {
	before, after T
	had, has      bool
}

// compose merges two successive changes of one list kind.
func compose[T, C any, K comparable](first, second changes[T, C], k kinds[T, C, K]) (added, removed []T, changed []C) {
	spans := map[K]*span[T]{}
	note := func(later bool, s span[T], key K) {
		if p, ok := spans[key]; ok && later {
			p.after, p.has = s.after, s.has
			return
		}
		spans[key] = &s
	}
	for i, c := range []changes[T, C]{first, second} {
		later := i == 1
		for _, e := range c.added {
			note(later, span[T]{after: e, has: true}, k.key(e))
		}
		for _, e := range c.removed {
			note(later, span[T]{before: e, had: true}, k.key(e))
		}
		for _, ch := range c.changed {
			note(later, span[T]{before: k.old(ch), after: k.new(ch), had: true, has: true}, k.key(k.new(ch)))
		}
	}
	for _, s := range spans {
		switch {
		case !s.had && s.has:
			added = append(added, s.after)
		case s.had && !s.has:
			removed = append(removed, s.before)
		case s.had && s.has && !k.equal(s.before, s.after):
			changed = append(changed, k.make(s.before, s.after))
		}
	}
	slices.SortFunc(added, k.sortBy)
	slices.SortFunc(removed, k.sortBy)
	slices.SortFunc(changed, func(a, b C) int { return k.sortBy(k.new(a), k.new(b)) })
	return added, removed, changed
}
