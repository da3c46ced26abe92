package ovsdb

import (
	"sync"
	"time"

	"github.com/ovn-org/libovsdb/model"
)

// changes collects what the cache reported changed since the last sync, so
// that a sync rereads only those rows. full asks for a reread of everything
// (a new connection, or a sync that failed after taking the changes).
type changes struct {
	mu  sync.Mutex
	set changeSet
}

type changeSet struct {
	full    bool
	bridges bool
	ports   map[string]struct{}
	ifaces  map[string]struct{}
	since   time.Time // when the first change of the set was reported
}

// mark records that a row of table changed.
func (ch *changes) mark(m model.Model) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.set.since.IsZero() {
		ch.set.since = time.Now()
	}
	switch row := m.(type) {
	case *bridgeRow:
		ch.set.bridges = true
	case *portRow:
		ch.set.ports = addKey(ch.set.ports, row.UUID)
	case *ifaceRow:
		ch.set.ifaces = addKey(ch.set.ifaces, row.UUID)
	}
}

// setFull asks the next sync to reread everything.
func (ch *changes) setFull() {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.set.full = true
}

// take returns the changes collected so far and starts a new collection.
func (ch *changes) take() changeSet {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	out := ch.set
	ch.set = changeSet{}
	return out
}

func addKey(m map[string]struct{}, k string) map[string]struct{} {
	if m == nil {
		m = map[string]struct{}{}
	}
	m[k] = struct{}{}
	return m
}

// bridgeIndex is which ports and interfaces are on the bridge, as of the
// last sync.
type bridgeIndex struct {
	brPorts map[string]struct{}  // port UUIDs in the bridge row
	ports   map[string]portState // those ports the cache holds
	owner   map[string]string    // interface UUID -> port UUID holding it
}

type portState struct {
	name   string
	ifaces []string
}

// newBridgeIndex indexes the bridge named bridge in r.
func newBridgeIndex(r *rows, bridge string) *bridgeIndex {
	ix := &bridgeIndex{brPorts: map[string]struct{}{}, ports: map[string]portState{}, owner: map[string]string{}}
	br := r.bridge(bridge)
	if br == nil {
		return ix
	}
	for _, pu := range br.Ports {
		ix.brPorts[pu] = struct{}{}
	}
	for i := range r.ports {
		if p := &r.ports[i]; ix.onBridge(p.UUID) {
			ix.setPort(p)
		}
	}
	return ix
}

func (ix *bridgeIndex) onBridge(portUUID string) bool {
	_, ok := ix.brPorts[portUUID]
	return ok
}

// setPorts replaces the bridge's port set and returns the ports that came
// or went.
func (ix *bridgeIndex) setPorts(ports []string) []string {
	now := make(map[string]struct{}, len(ports))
	var moved []string
	for _, pu := range ports {
		now[pu] = struct{}{}
		if !ix.onBridge(pu) {
			moved = append(moved, pu)
		}
	}
	for pu := range ix.brPorts {
		if _, ok := now[pu]; !ok {
			moved = append(moved, pu)
		}
	}
	ix.brPorts = now
	return moved
}

// setPort records a port on the bridge and its interfaces.
func (ix *bridgeIndex) setPort(p *portRow) {
	ix.ports[p.UUID] = portState{name: p.Name, ifaces: p.Interfaces}
	for _, iu := range p.Interfaces {
		ix.owner[iu] = p.UUID
	}
}

// dropPort forgets a port and returns the interfaces it held.
func (ix *bridgeIndex) dropPort(portUUID string) []string {
	old, ok := ix.ports[portUUID]
	if !ok {
		return nil
	}
	delete(ix.ports, portUUID)
	for _, iu := range old.ifaces {
		if ix.owner[iu] == portUUID {
			delete(ix.owner, iu)
		}
	}
	return old.ifaces
}

// portOf returns the name of the port on the bridge holding the interface.
func (ix *bridgeIndex) portOf(ifaceUUID string) (string, bool) {
	pu, ok := ix.owner[ifaceUUID]
	if !ok {
		return "", false
	}
	return ix.ports[pu].name, true
}
