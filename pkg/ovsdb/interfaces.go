package ovsdb

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"
)

// Interface is an Interface row on the integration bridge, as OVSDB holds it.
type Interface struct {
	UUID string
	Name string
	// Port is the name of the Port row holding the interface.
	Port string
	// Type is "" for a netdev (veth), "internal", "gre", ...
	Type string
	// OFPort is the OpenFlow port number: 0 while the column is empty (not
	// assigned yet), -1 when vswitchd could not attach the interface.
	OFPort int
	// OFPortRequest is the requested port number, 0 if none.
	OFPortRequest int
	// MTURequest is the mtu_request column, 0 if empty.
	MTURequest int
	// MACInUse is the mac_in_use column as written by vswitchd, "" if empty.
	MACInUse    string
	ExternalIDs map[string]string // nil when empty
	Options     map[string]string // nil when empty
	// Error is the error column (why vswitchd could not use it), "" if none.
	Error string
}

// EventKind says what happened to an interface.
type EventKind int

// Event kinds.
const (
	Added EventKind = iota + 1
	Updated
	Deleted
)

func (k EventKind) String() string {
	switch k {
	case Added:
		return "added"
	case Updated:
		return "updated"
	case Deleted:
		return "deleted"
	}
	return "unknown"
}

// InterfaceEvent is one change of an interface on the bridge. For Deleted,
// Interface is the last state seen.
type InterfaceEvent struct {
	Kind      EventKind
	Interface Interface
	// Received is when the update that made the change reached this client
	// (libovsdb's cache reported the first changed row); zero for the
	// interfaces of a full reread.
	Received time.Time
}

// rows is what the monitor cache holds for the tables that decide which
// interfaces are on the bridge.
type rows struct {
	root       []ovsRow
	bridges    []bridgeRow
	flowTables []flowTableRow
	ports      []portRow
	ifaces     []ifaceRow
}

func (r *rows) bridge(name string) *bridgeRow {
	for i := range r.bridges {
		if r.bridges[i].Name == name {
			return &r.bridges[i]
		}
	}
	return nil
}

func (r *rows) port(name string) *portRow {
	for i := range r.ports {
		if r.ports[i].Name == name {
			return &r.ports[i]
		}
	}
	return nil
}

func (r *rows) iface(name string) *ifaceRow {
	for i := range r.ifaces {
		if r.ifaces[i].Name == name {
			return &r.ifaces[i]
		}
	}
	return nil
}

// bridgeOf returns the bridge holding the port with that UUID, or nil.
func (r *rows) bridgeOf(portUUID string) *bridgeRow {
	for i := range r.bridges {
		for _, p := range r.bridges[i].Ports {
			if p == portUUID {
				return &r.bridges[i]
			}
		}
	}
	return nil
}

// bridgeInterfaces returns the interfaces on the named bridge by UUID.
// References to rows the cache does not hold are skipped.
func bridgeInterfaces(r *rows, bridge string) map[string]Interface {
	return bridgeInterfacesOf(r, bridge, toInterface)
}

// bridgeInterfacesOf is bridgeInterfaces with conv making each Interface.
func bridgeInterfacesOf(r *rows, bridge string, conv func(*ifaceRow, string) Interface) map[string]Interface {
	out := map[string]Interface{}
	br := r.bridge(bridge)
	if br == nil {
		return out
	}
	ports := make(map[string]*portRow, len(r.ports))
	for i := range r.ports {
		ports[r.ports[i].UUID] = &r.ports[i]
	}
	ifaces := make(map[string]*ifaceRow, len(r.ifaces))
	for i := range r.ifaces {
		ifaces[r.ifaces[i].UUID] = &r.ifaces[i]
	}
	for _, pu := range br.Ports {
		p := ports[pu]
		if p == nil {
			continue
		}
		for _, iu := range p.Interfaces {
			if row := ifaces[iu]; row != nil {
				out[iu] = conv(row, p.Name)
			}
		}
	}
	return out
}

func toInterface(row *ifaceRow, port string) Interface {
	i := ownInterface(row, port)
	i.ExternalIDs, i.Options = copyMap(row.ExternalIDs), copyMap(row.Options)
	return i
}

// ownInterface is toInterface sharing row's maps (the caller's to give
// away, as a snapshot's rows are), empty ones as nil.
func ownInterface(row *ifaceRow, port string) Interface {
	return Interface{
		UUID:          row.UUID,
		Name:          row.Name,
		Port:          port,
		Type:          row.Type,
		OFPort:        derefInt(row.OFPort),
		OFPortRequest: derefInt(row.OFPortRequest),
		MTURequest:    derefInt(row.MTURequest),
		MACInUse:      derefString(row.MACInUse),
		ExternalIDs:   nilIfEmpty(row.ExternalIDs),
		Options:       nilIfEmpty(row.Options),
		Error:         derefString(row.Error),
	}
}

// diffInterfaces returns the events that turn old into new: deletions
// first, then additions, then updates, each sorted by name then UUID.
func diffInterfaces(old, new map[string]Interface) []InterfaceEvent {
	var del, add, upd []InterfaceEvent
	for u, o := range old {
		if _, ok := new[u]; !ok {
			del = append(del, InterfaceEvent{Kind: Deleted, Interface: o})
		}
	}
	for u, n := range new {
		o, ok := old[u]
		switch {
		case !ok:
			add = append(add, InterfaceEvent{Kind: Added, Interface: n})
		case !o.equal(n):
			upd = append(upd, InterfaceEvent{Kind: Updated, Interface: n})
		}
	}
	for _, evs := range [][]InterfaceEvent{del, add, upd} {
		slices.SortFunc(evs, func(a, b InterfaceEvent) int { return compareIfaces(&a.Interface, &b.Interface) })
	}
	return append(append(del, add...), upd...)
}

// compareIfaces orders interfaces by name, then UUID.
func compareIfaces(a, b *Interface) int {
	return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.UUID, b.UUID))
}

func (i Interface) equal(o Interface) bool {
	return i.UUID == o.UUID && i.Name == o.Name && i.Port == o.Port && i.Type == o.Type &&
		i.OFPort == o.OFPort && i.OFPortRequest == o.OFPortRequest && i.MTURequest == o.MTURequest && i.MACInUse == o.MACInUse &&
		i.Error == o.Error && maps.Equal(i.ExternalIDs, o.ExternalIDs) && maps.Equal(i.Options, o.Options)
}

// clone returns a copy that shares no maps with i.
func (i Interface) clone() Interface {
	i.ExternalIDs = copyMap(i.ExternalIDs)
	i.Options = copyMap(i.Options)
	return i
}

func nilIfEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

func copyMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

func derefInt(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

func derefString(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
