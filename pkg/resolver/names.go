package resolver

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
)

// ErrInvalidName is wrapped by every error of ValidateName.
var ErrInvalidName = endpoint.ErrInvalidName

// maxLabel is the longest DNS label (RFC 1035 2.3.4).
const maxLabel = endpoint.MaxLabel

// ValidateName checks that name can be a container's name in DNS
// (endpoint.ValidateName: the endpoint contract's rule is the resolver's).
func ValidateName(name string) error { return endpoint.ValidateName(name) }

// Record is one endpoint's name in a network.
type Record struct {
	Key  string     // the endpoint's identity for the name source (an OVS interface, an etcd key)
	Name string     // a DNS label (ValidateName); stored lowercase
	Addr netip.Addr // IPv4
}

// Table holds, per network, the names its resolver answers: name ->
// addresses and address -> names. Writers (the name sources) change one
// endpoint at a time at a cost independent of the table's size; readers
// (queries) take a per-network read lock and never wait for each other.
// The zero value is not usable: call NewTable.
type Table struct {
	mu     sync.Mutex                           // serialises writers adding networks
	nets   atomic.Pointer[map[string]*netNames] // copied on write: networks change rarely
	synced atomic.Bool
}

// netNames is one network's names.
type netNames struct {
	mu     sync.RWMutex
	byKey  map[string]Record
	byName map[string]*nameEntry
	byAddr map[netip.Addr][]string // names, in the order they were set
}

// nameEntry is the endpoints carrying one name. next rotates the order of
// the answer, one step per query.
type nameEntry struct {
	keys  []string
	addrs []netip.Addr // addrs[i] belongs to keys[i]
	next  atomic.Uint32
}

// NewTable returns an empty table. Until SetSynced(true), misses in the
// cluster's names are answered SERVFAIL rather than NXDOMAIN (see SetSynced).
func NewTable() *Table {
	t := &Table{}
	m := map[string]*netNames{}
	t.nets.Store(&m)
	return t
}

// SetSynced tells the resolver whether every name source has delivered its
// initial state. Before that, a name not found might only not be loaded yet:
// it gets SERVFAIL (which clients do not cache and retry elsewhere) instead
// of an NXDOMAIN that caches could keep.
func (t *Table) SetSynced(v bool) { t.synced.Store(v) }

// Synced reports what SetSynced set last.
func (t *Table) Synced() bool { return t.synced.Load() }

// Set gives the endpoint key the name and address in network, replacing
// what key had there before. An invalid name is refused (ErrInvalidName)
// and the endpoint's previous record, if any, is left as it was.
func (t *Table) Set(network string, r Record) error {
	if err := ValidateName(r.Name); err != nil {
		return err
	}
	if !r.Addr.Is4() {
		return fmt.Errorf("name %q: address %v is not IPv4", r.Name, r.Addr)
	}
	if r.Key == "" {
		return fmt.Errorf("name %q: empty endpoint key", r.Name)
	}
	r.Name = strings.ToLower(r.Name)
	n := t.network(network, true)
	n.mu.Lock()
	defer n.mu.Unlock()
	if old, ok := n.byKey[r.Key]; ok {
		if old == r {
			return nil
		}
		n.remove(old)
	}
	n.add(r)
	return nil
}

// Delete removes the endpoint key's name from network; unknown keys are
// ignored.
func (t *Table) Delete(network, key string) {
	n := t.network(network, false)
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if old, ok := n.byKey[key]; ok {
		n.remove(old)
	}
}

// Replace makes network's names exactly records (a full resynchronisation):
// only the differences are applied. It returns the invalid records' errors
// joined; the valid ones are applied anyway.
func (t *Table) Replace(network string, records []Record) error {
	keep := make(map[string]bool, len(records))
	var errs []error
	for _, r := range records {
		if err := t.Set(network, r); err != nil {
			errs = append(errs, fmt.Errorf("endpoint %s: %w", r.Key, err))
			continue
		}
		keep[r.Key] = true
	}
	n := t.network(network, false)
	if n == nil {
		return errors.Join(errs...)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for k, old := range n.byKey {
		if !keep[k] {
			n.remove(old)
		}
	}
	return errors.Join(errs...)
}

// network returns network's names, creating them when create is set.
func (t *Table) network(name string, create bool) *netNames {
	if n := (*t.nets.Load())[name]; n != nil || !create {
		return n
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.nets.Load()
	if n := old[name]; n != nil {
		return n
	}
	n := &netNames{byKey: map[string]Record{}, byName: map[string]*nameEntry{}, byAddr: map[netip.Addr][]string{}}
	m := make(map[string]*netNames, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[name] = n
	t.nets.Store(&m)
	return n
}

// add and remove keep the three maps consistent; n.mu is held.
func (n *netNames) add(r Record) {
	n.byKey[r.Key] = r
	e := n.byName[r.Name]
	if e == nil {
		e = &nameEntry{}
		n.byName[r.Name] = e
	}
	e.keys = append(e.keys, r.Key)
	e.addrs = append(e.addrs, r.Addr)
	if !slices.Contains(n.byAddr[r.Addr], r.Name) {
		n.byAddr[r.Addr] = append(n.byAddr[r.Addr], r.Name)
	}
}

func (n *netNames) remove(r Record) {
	delete(n.byKey, r.Key)
	e := n.byName[r.Name]
	if i := slices.Index(e.keys, r.Key); i >= 0 {
		e.keys = slices.Delete(e.keys, i, i+1)
		e.addrs = slices.Delete(e.addrs, i, i+1)
	}
	if len(e.keys) == 0 {
		delete(n.byName, r.Name)
	}
	if slices.Contains(e.addrs, r.Addr) {
		return // another endpoint of the same name still has the address
	}
	names := slices.DeleteFunc(n.byAddr[r.Addr], func(s string) bool { return s == r.Name })
	if len(names) == 0 {
		delete(n.byAddr, r.Addr)
	} else {
		n.byAddr[r.Addr] = names
	}
}

// lookup appends name's addresses in network to buf, without duplicates,
// starting one further at every call (simple load spreading). name must be
// lowercase, without a trailing dot.
func (t *Table) lookup(network, name string, buf []netip.Addr) []netip.Addr {
	n := t.network(network, false)
	if n == nil {
		return buf
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	e := n.byName[name]
	if e == nil {
		return buf
	}
	start := len(buf)
	k := len(e.addrs)
	first := int(e.next.Add(1)-1) % k
	var seen map[netip.Addr]bool // only for long lists: short ones are scanned
	if k > 16 {
		seen = make(map[netip.Addr]bool, k)
	}
	for i := range k {
		a := e.addrs[(first+i)%k]
		switch {
		case seen != nil && seen[a], seen == nil && slices.Contains(buf[start:], a):
			continue
		case seen != nil:
			seen[a] = true
		}
		buf = append(buf, a)
	}
	return buf
}

// reverse appends the names that addr has in network to buf.
func (t *Table) reverse(network string, addr netip.Addr, buf []string) []string {
	n := t.network(network, false)
	if n == nil {
		return buf
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	return append(buf, n.byAddr[addr]...)
}

// Len returns the number of distinct names in network.
func (t *Table) Len(network string) int {
	n := t.network(network, false)
	if n == nil {
		return 0
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	return len(n.byName)
}

// NameAddrs is one name and its addresses, for listings.
type NameAddrs struct {
	Name  string       `json:"name"`
	Addrs []netip.Addr `json:"addrs"`
}

// List returns network's names sorted, each with its addresses sorted (the
// read API behind a /debug/names listing).
func (t *Table) List(network string) []NameAddrs {
	n := t.network(network, false)
	if n == nil {
		return nil
	}
	n.mu.RLock()
	out := make([]NameAddrs, 0, len(n.byName))
	for name, e := range n.byName {
		addrs := slices.Clone(e.addrs)
		slices.SortFunc(addrs, netip.Addr.Compare)
		out = append(out, NameAddrs{Name: name, Addrs: slices.Compact(addrs)})
	}
	n.mu.RUnlock()
	slices.SortFunc(out, func(a, b NameAddrs) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Networks returns the networks that have or had names, sorted.
func (t *Table) Networks() []string {
	m := *t.nets.Load()
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
