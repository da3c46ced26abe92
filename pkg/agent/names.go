package agent

import (
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/resolver"
)

// Endpoints' DNS names, for the resolver on the gateways (docs/dns.md).
// Two sources feed one table, each endpoint under a key of its own:
//
//   - this host's endpoints as OVSDB reports them (endpoint.KeyName), keyed
//     "port:<OVS port>", applied with the registry's changes: a name is
//     answered as soon as its endpoint is active, removed with it;
//   - in etcd mode, the other hosts' endpoints of the cluster view, keyed
//     "view:<network>/<ip>" (the view holds one winner per address),
//     applied from each view's delta. This host's own records in the view
//     are skipped: OVSDB is their source, and it is faster.
//
// The static cluster file has no endpoints: in static mode every host
// answers for its own endpoints only.

// NameTable receives the endpoints' names (resolver.Table); Set may refuse
// a record (an invalid name), which is reported.
type NameTable interface {
	Set(network string, r resolver.Record) error
	Delete(network, key string)
	// SetSynced(true) once both sources delivered their initial state:
	// before, the resolver answers an unknown cluster name SERVFAIL rather
	// than an NXDOMAIN a cache could keep.
	SetSynced(bool)
}

// names follows the two sources into Config.Names (loop-owned).
type names struct {
	rev  int64        // revision of the view last applied
	view cluster.View // its endpoints (Networks, Hosts dropped)
	have bool
}

func localNameKey(ep endpoint.Endpoint) string { return "port:" + ep.Port }

func viewNameKey(e cluster.RemoteEndpoint) string { return "view:" + e.Network + "/" + e.IP.String() }

// setLocalName follows an active local endpoint's name.
func (a *Agent) setLocalName(ep endpoint.Endpoint) {
	if a.cfg.Names == nil {
		return
	}
	if ep.Name == "" {
		a.cfg.Names.Delete(ep.Network, localNameKey(ep))
		return
	}
	if err := a.cfg.Names.Set(ep.Network, resolver.Record{Key: localNameKey(ep), Name: ep.Name, Addr: ep.IP}); err != nil {
		a.reject("endpoint", err)
	}
}

// deleteLocalName forgets a local endpoint's name (it is no longer active).
func (a *Agent) deleteLocalName(ep endpoint.Endpoint) {
	if a.cfg.Names != nil {
		a.cfg.Names.Delete(ep.Network, localNameKey(ep))
	}
}

// applyViewNames follows the names of the view's remote endpoints: v's
// delta when it starts at the view last applied, else the difference. The
// first view's names are set as they are read: no view name is in the
// table yet, so there is nothing to delete nor compare (a difference from
// nothing would copy the view's 100,000 endpoints into a list of
// additions, 47 MB allocated during the start at 100k remote endpoints).
func (a *Agent) applyViewNames(v cluster.View) {
	if a.cfg.Names == nil || v.Revision != 0 && v.Revision == a.names.rev && a.names.have {
		return
	}
	if !a.names.have {
		for e := range v.AllEndpoints() {
			if e.Name != "" && e.Host != a.cfg.NodeName {
				a.setViewName(e)
			}
		}
	} else {
		d := v.Delta
		if d == nil || d.From != a.names.rev {
			full := cluster.Diff(a.names.view, cluster.View{Endpoints: v.Endpoints, Set: v.Set})
			d = &full
		}
		for _, e := range d.EndpointsRemoved {
			a.cfg.Names.Delete(e.Network, viewNameKey(e))
		}
		for _, c := range d.EndpointsChanged {
			a.setViewName(c.New)
		}
		for _, e := range d.EndpointsAdded {
			a.setViewName(e)
		}
	}
	a.names.rev, a.names.view, a.names.have = v.Revision, cluster.View{Endpoints: v.Endpoints, Set: v.Set}, true
}

func (a *Agent) setViewName(e cluster.RemoteEndpoint) {
	if e.Name == "" || e.Host == a.cfg.NodeName {
		a.cfg.Names.Delete(e.Network, viewNameKey(e))
		return
	}
	if err := a.cfg.Names.Set(e.Network, resolver.Record{Key: viewNameKey(e), Name: e.Name, Addr: e.IP}); err != nil {
		a.reject("endpoint", err)
	}
}
