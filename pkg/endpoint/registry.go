package endpoint

import (
	"bytes"
	"fmt"
	"maps"
	"net/netip"
	"slices"
)

// Conflict says why an endpoint is waiting: another port holds its IP or MAC
// in the same network.
type Conflict struct {
	Endpoint Endpoint
	What     string // "ip" or "mac"
	HeldBy   string // port that holds it
}

func (c Conflict) Error() string {
	v := c.Endpoint.IP.String()
	if c.What == "mac" {
		v = c.Endpoint.MAC.String()
	}
	return fmt.Sprintf("interface %s: %s %s in network %s is already held by interface %s",
		c.Endpoint.Port, c.What, v, c.Endpoint.Network, c.HeldBy)
}

// Change is what one Upsert or Delete did to the set of active endpoints.
type Change struct {
	Added     []Endpoint // now active (programmed)
	Removed   []Endpoint // no longer active
	Conflicts []Conflict // endpoints left waiting by this change
}

// Empty reports whether nothing changed.
func (c Change) Empty() bool { return len(c.Added)+len(c.Removed)+len(c.Conflicts) == 0 }

type ipKey struct {
	network string
	ip      netip.Addr
}

type macKey struct {
	network string
	mac     [6]byte
}

// Registry decides which endpoints are active: in each network an IP and a
// MAC belong to one port. The incumbent keeps them; a later claimant waits
// (reported as a Conflict) and becomes active when the holder goes away,
// waiters in port-name order. Costs are proportional to the change.
type Registry struct {
	all     map[string]Endpoint // every valid endpoint, active or waiting
	active  map[string]bool
	waiting map[string]bool
	ipOwner map[ipKey]string
	macOwn  map[macKey]string
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{all: map[string]Endpoint{}, active: map[string]bool{}, waiting: map[string]bool{}, ipOwner: map[ipKey]string{}, macOwn: map[macKey]string{}}
}

// Active returns the active endpoints sorted by port name.
func (r *Registry) Active() []Endpoint {
	out := make([]Endpoint, 0, len(r.active))
	for _, p := range slices.Sorted(maps.Keys(r.active)) { // names, not the large structs, are moved
		out = append(out, r.all[p])
	}
	return out
}

// Get returns an endpoint by port and whether it is active.
func (r *Registry) Get(port string) (ep Endpoint, active, ok bool) {
	ep, ok = r.all[port]
	return ep, r.active[port], ok
}

// Upsert adds or updates the endpoint on ep.Port.
func (r *Registry) Upsert(ep Endpoint) Change {
	var ch Change
	if old, ok := r.all[ep.Port]; ok {
		if equal(old, ep) {
			return ch
		}
		r.release(old, &ch)
	}
	r.all[ep.Port] = ep
	r.admit(ep, &ch)
	r.promote(&ch)
	return ch
}

// Delete removes the endpoint on port, if any.
func (r *Registry) Delete(port string) Change {
	var ch Change
	old, ok := r.all[port]
	if !ok {
		return ch
	}
	r.release(old, &ch)
	delete(r.all, port)
	delete(r.waiting, port)
	r.promote(&ch)
	return ch
}

func (r *Registry) release(ep Endpoint, ch *Change) {
	if !r.active[ep.Port] {
		return
	}
	delete(r.active, ep.Port)
	delete(r.ipOwner, ipKey{ep.Network, ep.IP})
	delete(r.macOwn, macOf(ep))
	ch.Removed = append(ch.Removed, ep)
}

// admit activates ep if its IP and MAC are free, else records a conflict.
func (r *Registry) admit(ep Endpoint, ch *Change) bool {
	if c, ok := r.conflict(ep); ok {
		ch.Conflicts = append(ch.Conflicts, c)
		r.waiting[ep.Port] = true
		return false
	}
	delete(r.waiting, ep.Port)
	r.active[ep.Port] = true
	r.ipOwner[ipKey{ep.Network, ep.IP}] = ep.Port
	r.macOwn[macOf(ep)] = ep.Port
	ch.Added = append(ch.Added, ep)
	return true
}

func (r *Registry) conflict(ep Endpoint) (Conflict, bool) {
	if holder, ok := r.ipOwner[ipKey{ep.Network, ep.IP}]; ok && holder != ep.Port {
		return Conflict{ep, "ip", holder}, true
	}
	if holder, ok := r.macOwn[macOf(ep)]; ok && holder != ep.Port {
		return Conflict{ep, "mac", holder}, true
	}
	return Conflict{}, false
}

// promote activates waiting endpoints whose claims are now free. Only runs
// when something was released, so the common path costs nothing.
func (r *Registry) promote(ch *Change) {
	if len(ch.Removed) == 0 || len(r.waiting) == 0 {
		return
	}
	waiting := make([]string, 0, len(r.waiting))
	for p := range r.waiting {
		waiting = append(waiting, p)
	}
	slices.Sort(waiting)
	for _, p := range waiting {
		if _, busy := r.conflict(r.all[p]); !busy {
			r.admit(r.all[p], ch)
		}
	}
}

func macOf(ep Endpoint) macKey {
	var k macKey
	k.network = ep.Network
	copy(k.mac[:], ep.MAC)
	return k
}

func equal(a, b Endpoint) bool {
	return a.Port == b.Port && a.OFPort == b.OFPort && a.Network == b.Network && a.IP == b.IP &&
		bytes.Equal(a.MAC, b.MAC) && a.ContainerID == b.ContainerID && a.ContainerIface == b.ContainerIface && a.Gateway == b.Gateway &&
		a.Name == b.Name
}
