package agent

import (
	"bytes"
	"cmp"
	"net"
	"net/netip"
	"slices"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
)

// Remote endpoints (etcd mode) are owned per remote host: one owner holds
// the host's flows and the two flows of each endpoint on it, built on
// demand from a compact list (32 bytes per endpoint), so that
// 100,000 endpoints cost 1,000 owners, not 100,000 closures and names.

// remoteEP is a remote endpoint as the model keeps it (IPv4 only, as the
// cluster view).
type remoteEP struct {
	network string
	ip      [4]byte
	mac     [6]byte
}

func compareRemoteEP(a, b remoteEP) int {
	if c := cmp.Compare(a.network, b.network); c != 0 {
		return c
	}
	return bytes.Compare(a.ip[:], b.ip[:])
}

// remoteHost is a host of the view, or a host name endpoints refer to.
// eps is sorted by network and IP and copy-on-write: owners' builders
// capture it, so a change makes a new slice (once per batch).
type remoteHost struct {
	host  cluster.Host
	known bool // the view has the host
	eps   []remoteEP
}

// remotes groups the view's remote endpoints by host. One batch of changes
// (a view's delta) ends with endBatch.
type remotes struct {
	hosts map[string]*remoteHost
	fresh map[*remoteHost]bool // eps copied during this batch: safe to change in place
}

func newRemotes() remotes {
	return remotes{hosts: map[string]*remoteHost{}, fresh: map[*remoteHost]bool{}}
}

// get returns the entry of host name, creating it.
func (r *remotes) get(name string) *remoteHost {
	h := r.hosts[name]
	if h == nil {
		h = &remoteHost{}
		r.hosts[name] = h
	}
	return h
}

// setHost records host h (known) or its absence (nil: name only).
func (r *remotes) setHost(name string, h *cluster.Host) {
	e := r.get(name)
	if h == nil {
		e.host, e.known = cluster.Host{Name: name}, false
	} else {
		e.host, e.known = *h, true
	}
	r.forget(name, e)
}

// writable returns h's endpoint list, copied once per batch.
func (r *remotes) writable(h *remoteHost) []remoteEP {
	if !r.fresh[h] {
		h.eps = slices.Clone(h.eps)
		r.fresh[h] = true
	}
	return h.eps
}

// add places e on its host, replacing an entry with the same network and
// IP. An endpoint whose MAC is not 6 bytes long or whose IP is not IPv4
// is refused (false).
func (r *remotes) add(e cluster.RemoteEndpoint) bool {
	if len(e.MAC) != 6 || !e.IP.Is4() {
		return false
	}
	re := remoteEP{network: e.Network, ip: e.IP.As4(), mac: [6]byte(e.MAC)}
	h := r.get(e.Host)
	eps := r.writable(h)
	if i, found := slices.BinarySearchFunc(eps, re, compareRemoteEP); found {
		eps[i] = re
	} else {
		h.eps = slices.Insert(eps, i, re)
	}
	return true
}

// remove takes e off its host.
func (r *remotes) remove(e cluster.RemoteEndpoint) {
	h := r.hosts[e.Host]
	if h == nil {
		return
	}
	if !e.IP.Is4() {
		return
	}
	re := remoteEP{network: e.Network, ip: e.IP.As4()}
	if i, found := slices.BinarySearchFunc(h.eps, re, compareRemoteEP); found {
		h.eps = slices.Delete(r.writable(h), i, i+1)
	}
	r.forget(e.Host, h)
}

// forget drops the entry of a host that is gone and has no endpoints.
func (r *remotes) forget(name string, h *remoteHost) {
	if !h.known && len(h.eps) == 0 {
		delete(r.hosts, name)
		delete(r.fresh, h)
	}
}

// endBatch freezes the lists changed in this batch (builders capture them),
// trimmed when growing them left much room.
func (r *remotes) endBatch() {
	for h := range r.fresh {
		if cap(h.eps) > len(h.eps)+len(h.eps)/8+4 {
			h.eps = slices.Clone(h.eps)
		}
	}
	clear(r.fresh)
}

// remoteHostFlows are the flows of a remote host and of its endpoints in
// the networks of need (nil: every network); nets is sorted by name.
// Without a tunnel port there are none.
func remoteHostFlows(tunnelPort uint32, h pipeline.RemoteHost, nets []pipeline.Network, eps []remoteEP, need map[string]bool) []flow.Flow {
	if tunnelPort == 0 {
		return nil
	}
	out := pipeline.RemoteHostFlows(h, nets)
	out = slices.Grow(out, 2*len(eps))
	for _, e := range eps {
		if need != nil && !need[e.network] {
			continue
		}
		i, ok := slices.BinarySearchFunc(nets, e.network, func(n pipeline.Network, name string) int { return cmp.Compare(n.Name, name) })
		if !ok {
			continue
		}
		mac := make(net.HardwareAddr, 6)
		copy(mac, e.mac[:])
		re := pipeline.RemoteEndpoint{Network: e.network, IP: netip.AddrFrom4(e.ip), MAC: mac, Host: h.Name}
		out = append(out, pipeline.RemoteEndpointFlows(nets[i], h, re)...)
	}
	return out
}
