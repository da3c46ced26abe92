package etcd

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
)

// resolve applies the recorded changes: it settles conflicts and updates
// the view's lists, and records the change in x.delta, except the first
// time (a new index's view is published whole, without a delta).
func (x *index) resolve() bool {
	defer func() { x.previous, x.built = nil, true }()
	before := cluster.View{Networks: x.networks, Hosts: x.hostList}
	x.delta = cluster.Delta{}
	netsChanged := x.netsDirty && x.resolveNetworks()
	hostsChanged := false
	var moved map[string]bool
	if x.hostsDirty {
		hostsChanged, moved = x.resolveHosts()
	}
	if x.built && (netsChanged || hostsChanged) {
		x.delta = cluster.Diff(before, cluster.View{Networks: x.networks, Hosts: x.hostList})
	}
	x.netsDirty, x.hostsDirty = false, false
	if netsChanged {
		for id := range x.ips {
			x.dirty[id] = struct{}{}
		}
	} else if len(moved) > 0 {
		x.markHosts(moved)
	}
	epsChanged := x.resolveEndpoints()
	return netsChanged || hostsChanged || epsChanged
}

// resolveNetworks rebuilds the effective networks: the local file's, then
// etcd's in create order; a name or VNI already taken loses.
func (x *index) resolveNetworks() bool {
	recs := slices.SortedFunc(maps.Values(x.nets), func(a, b netRec) int {
		return cmp.Or(cmp.Compare(a.create, b.create), cmp.Compare(a.net.Name, b.net.Name))
	})
	view := maps.Clone(x.static)
	byVNI := map[uint32]string{}
	for _, n := range x.static {
		byVNI[n.VNI] = n.Name
	}
	for _, r := range recs {
		key := x.keys.network(r.net.Name)
		_, shadowed := x.static[r.net.Name]
		switch holder, taken := byVNI[r.net.VNI]; {
		case shadowed:
			x.note("conflict:"+key, KindConflict, &ConflictError{Key: key, What: "name", Winner: "the local cluster file"})
		case taken:
			x.note("conflict:"+key, KindConflict, &ConflictError{Key: key, What: "vni", Winner: x.winnerName(holder, true)})
		default:
			x.unnote("conflict:", key)
			view[r.net.Name] = r.net
			byVNI[r.net.VNI] = r.net.Name
		}
	}
	for name := range view {
		x.unnote("network:", name)
	}
	if x.built && maps.Equal(view, x.netView) {
		return false
	}
	x.netView = view
	x.networks = slices.SortedFunc(maps.Values(view), func(a, b cluster.Network) int { return cmp.Compare(a.Name, b.Name) })
	return true
}

func (x *index) winnerName(name string, network bool) string {
	if network {
		if _, ok := x.static[name]; ok {
			return "network " + name + " of the local cluster file"
		}
		return x.keys.network(name)
	}
	return x.keys.host(name)
}

// resolveHosts rebuilds the effective hosts (a tunnel IP already taken
// loses). It reports whether they changed, and which appeared or vanished.
func (x *index) resolveHosts() (bool, map[string]bool) {
	recs := slices.SortedFunc(maps.Values(x.hosts), func(a, b hostRec) int {
		return cmp.Or(cmp.Compare(a.create, b.create), cmp.Compare(a.host.Name, b.host.Name))
	})
	view := make(map[string]cluster.Host, len(recs))
	byIP := map[[4]byte]string{}
	for _, r := range recs {
		key := x.keys.host(r.host.Name)
		if holder, taken := byIP[r.host.TunnelIP.As4()]; taken {
			x.note("conflict:"+key, KindConflict, &ConflictError{Key: key, What: "tunnel_ip", Winner: x.winnerName(holder, false)})
			continue
		}
		x.unnote("conflict:", key)
		view[r.host.Name] = r.host
		byIP[r.host.TunnelIP.As4()] = r.host.Name
	}
	moved := map[string]bool{}
	for name := range x.hostView {
		if _, ok := view[name]; !ok {
			moved[name] = true
		}
	}
	same := x.built && len(view) == len(x.hostView)
	for name, h := range view {
		old, ok := x.hostView[name]
		if !ok {
			moved[name] = true
		}
		same = same && ok && old.Equal(h)
	}
	if same {
		return false, nil
	}
	x.hostView = view
	x.hostList = slices.SortedFunc(maps.Values(view), func(a, b cluster.Host) int { return cmp.Compare(a.Name, b.Name) })
	return true, moved
}

// markHosts marks every IP claimed by one of the hosts for resolution.
func (x *index) markHosts(hosts map[string]bool) {
	for h := range hosts {
		for _, id := range x.byHost[h] {
			x.dirty[id] = struct{}{}
		}
	}
}

// resolveEndpoints settles the dirty IPs: first the winner of each IP,
// then of each MAC those winners use; it updates the sorted endpoint list.
func (x *index) resolveEndpoints() bool {
	if len(x.dirty) == 0 {
		return false
	}
	// MAC groups whose holder may have changed: a group with other
	// members that this IP joined, left or changed its claim in.
	touched := map[macKey]struct{}{}
	for id := range x.dirty {
		st, ok := x.ips[id]
		if !ok {
			continue
		}
		st.win = x.chooseIP(id, &st)
		w, ok := st.winner()
		if st.inMacs && (!ok || w.mac != st.held) {
			old := macKey{id.net, st.held}
			if x.macs.remove(old, id) > 0 {
				touched[old] = struct{}{}
			}
			st.inMacs = false
		}
		if ok {
			mk := macKey{id.net, w.mac}
			size := 0
			if !st.inMacs {
				size = x.macs.add(mk, id)
				st.inMacs, st.held = true, w.mac
			} else {
				size = x.macs.size(mk)
			}
			if size > 1 {
				touched[mk] = struct{}{}
			}
		}
		x.ips[id] = st
	}
	for mk := range touched {
		for _, id := range x.macs.members(mk) {
			x.dirty[id] = struct{}{}
		}
	}
	var changes []ipKey
	for id := range x.dirty {
		if x.settle(id) {
			changes = append(changes, id)
		}
	}
	x.dirty = map[ipKey]struct{}{} // not clear(): a map keeps its largest size, and ranging over it costs that
	if len(changes) == 0 {
		return false
	}
	x.endpoints = x.merge(changes)
	return true
}

// chooseIP returns the index of the oldest claim whose host is known, if
// the IP belongs to a known network; other eligible claims are reported.
func (x *index) chooseIP(id ipKey, st *ipState) int32 {
	network := x.network(id)
	n, ok := x.netView[network]
	if !ok || !n.Subnet.Contains(id.addr()) {
		for _, c := range st.claims {
			x.unnoteEndpoint(id, c.host)
		}
		if len(st.claims) == 0 {
			return -1
		}
		if !ok {
			x.note("network:"+network, KindEndpoint, fmt.Errorf("etcd endpoints of network %q: no such network", network))
			return -1
		}
		for _, c := range st.claims {
			key := x.keys.endpoint(network, id.addr(), c.host)
			x.note("endpoint:"+key, KindEndpoint, &RecordError{Key: key, Reason: "ip is outside the network's subnet " + n.Subnet.String()})
		}
		return -1
	}
	win := int32(-1)
	for i, c := range st.claims {
		if _, known := x.hostView[c.host]; !known {
			x.unnoteEndpoint(id, c.host) // waits for its host record
			continue
		}
		if win < 0 {
			win = int32(i) // settle reports it if it loses its MAC
			continue
		}
		key := x.keys.endpoint(network, id.addr(), c.host)
		winner := x.keys.endpoint(network, id.addr(), st.claims[win].host)
		x.note("conflict:"+key, KindConflict, &ConflictError{Key: key, What: "ip", Winner: winner})
	}
	return win
}

// unnoteEndpoint forgets the conflict reported about host's claim on id;
// its key is built only when something was reported.
func (x *index) unnoteEndpoint(id ipKey, host string) {
	if len(x.reported) > 0 {
		x.unnote("conflict:", x.keys.endpoint(x.network(id), id.addr(), host))
	}
}

// macHolder returns the IP whose winning claim holds the MAC: the oldest.
func (x *index) macHolder(mk macKey) ipKey {
	ids, ok := x.macs.more[mk]
	if !ok {
		return x.macs.one[mk]
	}
	best := ids[0]
	for _, id := range ids[1:] {
		a, _ := x.ips[id].winner()
		b, _ := x.ips[best].winner()
		if a.before(b) || a == b && x.compareIPKeys(id, best) < 0 {
			best = id
		}
	}
	return best
}

// settle decides whether an IP is in the view and reports whether its
// entry changed.
func (x *index) settle(id ipKey) bool {
	st, ok := x.ips[id]
	if !ok {
		return false
	}
	w, show := st.winner()
	if show {
		mk := macKey{id.net, w.mac}
		if holder := x.macHolder(mk); holder != id {
			show = false
			hw, _ := x.ips[holder].winner()
			key := x.keys.endpoint(x.network(id), id.addr(), w.host)
			x.note("conflict:"+key, KindConflict, &ConflictError{Key: key, What: "mac", Winner: x.keys.endpoint(x.network(holder), holder.addr(), hw.host)})
		} else {
			x.unnoteEndpoint(id, w.host)
		}
	}
	changed := show != st.inView
	if show && st.inView { // compared with what the view shows now
		was, found := x.endpoints.Lookup(x.network(id), id.addr())
		changed = !found || !shows(was, w)
	}
	st.inView = show
	if len(st.claims) == 0 && !st.inMacs {
		delete(x.ips, id)
	} else {
		x.ips[id] = st
	}
	return changed
}

// merge returns the endpoint set with the changed IPs replaced by what
// the view now shows for them, and records the changes in x.delta (not on
// the first resolve: nobody reads that delta). The set shares what did not
// change with the previous one (cluster.EndpointSet.With).
func (x *index) merge(changes []ipKey) *cluster.EndpointSet {
	slices.SortFunc(changes, x.compareIPKeys)
	if x.endpoints.Len() == 0 { // the first load: one list
		eps := make([]cluster.RemoteEndpoint, 0, len(changes))
		macs := make([]byte, 6*len(changes)) // one allocation for every MAC
		for _, id := range changes {
			if st, ok := x.ips[id]; ok && st.inView {
				w, _ := st.winner()
				e := x.endpointWith(id, w, macs[:6:6])
				macs = macs[6:]
				eps = append(eps, e)
				if x.built {
					x.delta.EndpointsAdded = append(x.delta.EndpointsAdded, e)
				}
			}
		}
		return cluster.NewEndpointSet(eps)
	}
	var d *cluster.Delta // nil: not recorded
	if x.built {
		d = &x.delta
	}
	ups := make([]cluster.EndpointUpdate, 0, len(changes))
	for _, id := range changes {
		network := x.network(id)
		was, found := x.endpoints.Lookup(network, id.addr())
		st, ok := x.ips[id]
		var w claim
		if ok && st.inView {
			w, _ = st.winner()
		}
		u := cluster.EndpointUpdate{Network: network, IP: id.addr()}
		switch {
		case ok && st.inView && !found:
			e := x.endpointFor(id, w)
			u.New = &e
			if d != nil {
				d.EndpointsAdded = append(d.EndpointsAdded, e)
			}
		case ok && st.inView:
			e := x.endpointFor(id, w)
			u.New = &e
			if d != nil && !was.Equal(e) {
				d.EndpointsChanged = append(d.EndpointsChanged, cluster.EndpointChange{Old: was, New: e})
			}
		case found:
			if d != nil {
				d.EndpointsRemoved = append(d.EndpointsRemoved, was)
			}
		default:
			continue
		}
		ups = append(ups, u)
	}
	return x.endpoints.With(ups)
}
