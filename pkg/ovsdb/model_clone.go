package ovsdb

import (
	"slices"

	"github.com/ovn-org/libovsdb/model"
)

// The models implement model.CloneableModel: without it libovsdb copies
// every row it hands out (List, Get, events) through JSON.

func (r *ovsRow) CloneModel() model.Model {
	n := &ovsRow{}
	r.CloneModelInto(n)
	return n
}

func (r *ovsRow) CloneModelInto(m model.Model) {
	dst := m.(*ovsRow)
	*dst = *r
	dst.Bridges = slices.Clone(r.Bridges)
	dst.OtherConfig = cloneMap(r.OtherConfig)
}

func (r *bridgeRow) CloneModel() model.Model {
	n := &bridgeRow{}
	r.CloneModelInto(n)
	return n
}

func (r *bridgeRow) CloneModelInto(m model.Model) {
	dst := m.(*bridgeRow)
	*dst = *r
	dst.Ports = slices.Clone(r.Ports)
	dst.FailMode = clonePtr(r.FailMode)
	dst.Protocols = slices.Clone(r.Protocols)
	dst.OtherConfig = cloneMap(r.OtherConfig)
	dst.FlowTables = cloneMap(r.FlowTables)
}

func (r *flowTableRow) CloneModel() model.Model {
	n := &flowTableRow{}
	r.CloneModelInto(n)
	return n
}

func (r *flowTableRow) CloneModelInto(m model.Model) {
	dst := m.(*flowTableRow)
	*dst = *r
	dst.Name = clonePtr(r.Name)
}

func (r *portRow) CloneModel() model.Model {
	n := &portRow{}
	r.CloneModelInto(n)
	return n
}

func (r *portRow) CloneModelInto(m model.Model) {
	dst := m.(*portRow)
	*dst = *r
	dst.Interfaces = slices.Clone(r.Interfaces)
}

func (r *ifaceRow) CloneModel() model.Model {
	n := &ifaceRow{}
	r.CloneModelInto(n)
	return n
}

func (r *ifaceRow) CloneModelInto(m model.Model) {
	dst := m.(*ifaceRow)
	*dst = *r
	dst.Options = cloneMap(r.Options)
	dst.ExternalIDs = cloneMap(r.ExternalIDs)
	dst.OFPort = clonePtr(r.OFPort)
	dst.OFPortRequest = clonePtr(r.OFPortRequest)
	dst.MTURequest = clonePtr(r.MTURequest)
	dst.MACInUse = clonePtr(r.MACInUse)
	dst.Error = clonePtr(r.Error)
}

// cloneMap copies m, keeping nil as nil and empty as empty (as the JSON
// round trip it replaces does).
func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return nil
	}
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
