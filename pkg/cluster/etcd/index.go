package etcd

import (
	"cmp"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
)

// Report kinds passed to Config.OnReject.
const (
	KindRecord   = "etcd-record" // a key or value that does not parse
	KindConflict = "conflict"    // a record that lost a conflict
	KindEndpoint = "endpoint"    // an endpoint whose network is unknown or whose IP is outside it
	// KindOldLayout: a host publishing in the key layout of earlier
	// versions; its records are ignored (reported once per host).
	KindOldLayout = "etcd-old-layout"
)

// ipKey identifies one address in one network, the network by its number
// (index.netNames): 8 bytes per key of the maps that hold every IP, where
// the name took 24.
type ipKey struct {
	net uint32
	ip  [4]byte
}

func (k ipKey) addr() netip.Addr { return netip.AddrFrom4(k.ip) }

// compareIPKeys orders by network name, then IP.
func (x *index) compareIPKeys(a, b ipKey) int {
	if a.net != b.net {
		if c := cmp.Compare(x.netNames[a.net], x.netNames[b.net]); c != 0 {
			return c
		}
	}
	return slices.Compare(a.ip[:], b.ip[:])
}

// macKey identifies one MAC in one network.
type macKey struct {
	net uint32
	mac [6]byte
}

// claim is one host's record for an IP.
type claim struct {
	host   string
	mac    [6]byte
	name   string // DNS name, "" for none
	create int64  // etcd create revision: the oldest claim wins
	// legacy: the claim's key is of the host layout. A host's claim in
	// the claims layout replaces its legacy one and is not replaced nor
	// dropped by it (an upgraded agent writes the new key, then deletes
	// the old one).
	legacy bool
}

// before orders claims: lower create revision first, then host name.
func (c claim) before(o claim) bool {
	return c.create < o.create || c.create == o.create && c.host < o.host
}

// ipState is every claim on one IP and whether the view shows it (what it
// shows is in the view's set, not copied here).
type ipState struct {
	claims []claim // sorted with before
	win    int32   // index of the winning claim (host and network known), -1 if none
	inMacs bool    // the IP is listed in index.macs under held
	inView bool    // the published view has the IP
	held   [6]byte
}

func (s ipState) winner() (claim, bool) {
	if s.win < 0 {
		return claim{}, false
	}
	return s.claims[s.win], true
}

type netRec struct {
	net    cluster.Network
	create int64
}

type hostRec struct {
	host   cluster.Host
	create int64
}

// index holds every record under the prefix, resolves conflicts and builds
// views. Changes are recorded by put and del; resolve does work
// proportional to what changed (networks changing redo every endpoint).
// It is used by one goroutine.
type index struct {
	keys   keys
	static map[string]cluster.Network // from the local file: they win over etcd records
	report func(kind string, err error)

	nets  map[string]netRec
	hosts map[string]hostRec
	ips   map[ipKey]ipState
	macs  macIndex          // IPs whose winning claim uses the MAC
	names map[string]string // interned network and host names
	// netIDs numbers the network names of endpoint records (ipKey.net),
	// netNames is the reverse; numbers are not reused.
	netIDs   map[string]uint32
	netNames []string
	nclaims  int // claims stored in ips
	// claimSlab is what is left of the block newClaims cuts lists from.
	claimSlab []claim
	byHost    map[string][]ipKey // the IPs each host claims, in no order
	// Records of the old layout, ignored: key -> host, and how many each
	// host has.
	oldKeys  map[string]string
	oldHosts map[string]int
	// hostReaders holds the hosts whose valid record lacks ClaimsLayout:
	// agents of the previous version, which read the host layout alone.
	// readersChanged is set when it changes (and for a new index).
	hostReaders    map[string]struct{}
	readersChanged bool

	netView   map[string]cluster.Network
	hostView  map[string]cluster.Host
	networks  []cluster.Network // as last built
	hostList  []cluster.Host
	endpoints *cluster.EndpointSet // shared with the views published: never changed, replaced

	dirty                 map[ipKey]struct{}
	netsDirty, hostsDirty bool
	built                 bool          // resolve ran once
	delta                 cluster.Delta // what the last resolve changed in the view (From not set)

	// reported holds the problem last reported per subject, so that each
	// is reported once; previous is the map of the index this one replaces
	// (a relist), consulted until the first resolve.
	reported, previous map[string]string
}

func newIndex(k keys, static []cluster.Network, report func(string, error)) *index {
	x := &index{keys: k, static: map[string]cluster.Network{}, report: report,
		nets: map[string]netRec{}, hosts: map[string]hostRec{}, ips: map[ipKey]ipState{},
		macs: newMacIndex(0), netIDs: map[string]uint32{}, byHost: map[string][]ipKey{}, names: map[string]string{}, netView: map[string]cluster.Network{},
		hostView: map[string]cluster.Host{}, dirty: map[ipKey]struct{}{}, reported: map[string]string{},
		oldKeys: map[string]string{}, oldHosts: map[string]int{}, hostReaders: map[string]struct{}{},
		readersChanged: true, netsDirty: true, hostsDirty: true}
	for _, n := range static {
		x.static[n.Name] = n
	}
	return x
}

// netID returns the number of network name, numbering it if new.
func (x *index) netID(name string) uint32 {
	if id, ok := x.netIDs[name]; ok {
		return id
	}
	name = x.intern(name)
	id := uint32(len(x.netNames))
	x.netIDs[name] = id
	x.netNames = append(x.netNames, name)
	return id
}

// network is the name of k's network.
func (x *index) network(k ipKey) string { return x.netNames[k.net] }

func (x *index) intern(s string) string {
	if v, ok := x.names[s]; ok {
		return v
	}
	s = strings.Clone(s)
	x.names[s] = s
	return s
}

// note reports err about subject unless the same problem was reported.
func (x *index) note(subject, kind string, err error) {
	msg := err.Error()
	if x.reported[subject] == msg {
		return
	}
	x.reported[subject] = msg
	if x.previous != nil && x.previous[subject] == msg {
		return
	}
	if x.report != nil {
		x.report(kind, err)
	}
}

// unnote forgets the problem reported about kind+what (kind is the
// subject's prefix, "conflict:"...): it is reported again if it returns.
// With nothing reported (the usual case) it builds no string: a load of
// 100,000 records calls it for each.
func (x *index) unnote(kind, what string) {
	if len(x.reported) > 0 {
		delete(x.reported, kind+what)
	}
}

// put records the value of a key.
func (x *index) put(key string, value []byte, create int64) {
	pk, err := x.keys.parse(key)
	if err != nil {
		x.note("record:"+key, KindRecord, err)
		return
	}
	switch pk.kind {
	case kindNetwork:
		n, err := parseNetwork(key, pk.name, value)
		x.netsDirty = true
		if err != nil {
			x.note("record:"+key, KindRecord, err)
			delete(x.nets, pk.name)
			return
		}
		x.unnote("record:", key)
		x.nets[x.intern(pk.name)] = netRec{n, create}
	case kindHost:
		h, claims, err := parseHost(key, pk.host, value)
		x.hostsDirty = true
		if err != nil {
			x.note("record:"+key, KindRecord, err)
			delete(x.hosts, pk.host)
			x.setHostReader(pk.host, false)
			return
		}
		x.unnote("record:", key)
		x.hosts[x.intern(pk.host)] = hostRec{h, create}
		x.setHostReader(pk.host, !claims)
	case kindEndpoint:
		mac, name, err := parseEndpoint(key, value)
		id := ipKey{x.netID(pk.network), pk.ip.As4()}
		if err != nil {
			x.note("record:"+key, KindRecord, err)
			x.dropClaim(id, pk.host, pk.legacy)
			return
		}
		x.unnote("record:", key)
		x.setClaim(id, claim{host: x.intern(pk.host), mac: mac, name: name, create: create, legacy: pk.legacy})
	case kindOldLayout:
		x.putOld(key, pk.host)
	}
}

// putOld counts a record of the old layout; the first of a host is
// reported. Its value is not read: nobody can tell who wrote it.
func (x *index) putOld(key, host string) {
	if _, ok := x.oldKeys[key]; ok {
		return
	}
	x.oldKeys[key] = host
	if x.oldHosts[host]++; x.oldHosts[host] == 1 {
		x.note("old:"+host, KindOldLayout, &OldLayoutError{Key: key, Host: host})
	}
}

func (x *index) delOld(key string) {
	host, ok := x.oldKeys[key]
	if !ok {
		return
	}
	delete(x.oldKeys, key)
	if x.oldHosts[host]--; x.oldHosts[host] <= 0 {
		delete(x.oldHosts, host)
		x.unnote("old:", host)
	}
}

// del records the deletion of a key.
func (x *index) del(key string) {
	x.unnote("record:", key)
	x.unnote("conflict:", key)
	pk, err := x.keys.parse(key)
	if err != nil {
		return
	}
	switch pk.kind {
	case kindNetwork:
		delete(x.nets, pk.name)
		x.netsDirty = true
	case kindHost:
		delete(x.hosts, pk.host)
		x.hostsDirty = true
		x.setHostReader(pk.host, false)
	case kindEndpoint:
		x.unnote("endpoint:", key)
		if pk.legacy { // reports name the claims layout's key
			canon := x.keys.endpoint(pk.network, pk.ip, pk.host)
			x.unnote("endpoint:", canon)
			x.unnote("conflict:", canon)
		}
		if n, ok := x.netIDs[pk.network]; ok {
			x.dropClaim(ipKey{n, pk.ip.As4()}, pk.host, pk.legacy)
		}
	case kindOldLayout:
		x.delOld(key)
	}
}

// setHostReader notes whether host reads the host layout alone.
func (x *index) setHostReader(host string, reader bool) {
	if _, was := x.hostReaders[host]; was == reader {
		return
	}
	if reader {
		x.hostReaders[x.intern(host)] = struct{}{}
	} else {
		delete(x.hostReaders, host)
	}
	x.readersChanged = true
}

// takeHostReaders returns the hosts that read the host layout alone,
// sorted, if that set changed since the last call (always on the first).
func (x *index) takeHostReaders() ([]string, bool) {
	if !x.readersChanged {
		return nil, false
	}
	x.readersChanged = false
	return slices.Sorted(maps.Keys(x.hostReaders)), true
}

func (x *index) setClaim(id ipKey, c claim) {
	st, ok := x.ips[id]
	if !ok {
		st = ipState{win: -1}
	}
	if i := slices.IndexFunc(st.claims, func(o claim) bool { return o.host == c.host }); i >= 0 {
		if c.legacy && !st.claims[i].legacy {
			return // the host's claim in the claims layout stands
		}
		st.claims = slices.Delete(st.claims, i, i+1)
		x.nclaims--
		x.unclaim(c.host, id)
	}
	i, _ := slices.BinarySearchFunc(st.claims, c, func(a, b claim) int {
		if a.before(b) {
			return -1
		}
		return 1
	})
	if st.claims == nil {
		st.claims = x.newClaims()
	}
	st.claims = slices.Insert(st.claims, i, c)
	x.nclaims++
	x.byHost[c.host] = append(x.byHost[c.host], id)
	x.ips[id] = st
	x.dirty[id] = struct{}{}
}

// claimBlock is how many one-claim lists the initial load takes from one
// allocation (newClaims).
const claimBlock = 4096

// newClaims returns an empty list with room for one claim. Before the
// first resolve (the initial load) the lists are cut from blocks of
// claimBlock: 100,000 of them are then 25 allocations instead of 100,000
// small objects scattered among the records being decoded, which left the
// heap's spans fragmented once those were freed. A block lives while one
// of its lists does: at most the size of the load.
func (x *index) newClaims() []claim {
	if x.built {
		return make([]claim, 0, 1)
	}
	if len(x.claimSlab) == 0 {
		x.claimSlab = make([]claim, claimBlock)
	}
	c := x.claimSlab[:0:1]
	x.claimSlab = x.claimSlab[1:]
	return c
}

// unclaim takes id off host's list (a host claims ~100 IPs: a scan).
func (x *index) unclaim(host string, id ipKey) {
	ids := x.byHost[host]
	if i := slices.Index(ids, id); i >= 0 {
		ids[i] = ids[len(ids)-1]
		ids = ids[:len(ids)-1]
	}
	if len(ids) == 0 {
		delete(x.byHost, host)
		return
	}
	x.byHost[host] = ids
}

// dropClaim removes host's claim on id, if it is of the layout legacy
// says.
func (x *index) dropClaim(id ipKey, host string, legacy bool) {
	st, ok := x.ips[id]
	if !ok {
		return
	}
	i := slices.IndexFunc(st.claims, func(o claim) bool { return o.host == host })
	if i < 0 || st.claims[i].legacy != legacy {
		return
	}
	st.claims = slices.Delete(st.claims, i, i+1)
	x.nclaims--
	x.unclaim(host, id)
	x.ips[id] = st
	x.dirty[id] = struct{}{}
}

// dropNetwork removes every claim of network's in the claims layout (a
// network no longer loaded); the host layout's come with the hosts'
// records and stay. It scans the IPs.
func (x *index) dropNetwork(network string) {
	n, ok := x.netIDs[network]
	if !ok {
		return
	}
	for id, st := range x.ips {
		if id.net != n {
			continue
		}
		for _, c := range slices.Clone(st.claims) {
			if !c.legacy {
				x.dropClaim(id, c.host, false)
			}
		}
	}
}

// held returns the keys of sp's records the index holds, records
// reported as bad included: what a new listing of sp must find again, or
// delete (Source.relist). sp is baseSpan or a claimSpan: a network's
// claims in the claims layout are all in it or none. It scans the IPs.
func (x *index) held(sp span) map[string]struct{} {
	keys := map[string]struct{}{}
	add := func(key string) {
		if key >= sp.key && key < sp.end {
			keys[key] = struct{}{}
		}
	}
	for name := range x.nets {
		add(x.keys.network(name))
	}
	for name := range x.hosts {
		add(x.keys.host(name))
	}
	for key := range x.oldKeys {
		add(key)
	}
	for subject := range x.reported {
		if key, ok := strings.CutPrefix(subject, "record:"); ok {
			add(key)
		}
	}
	inSpan := map[uint32]bool{} // per network: its claims are in sp
	for id, st := range x.ips {
		for _, c := range st.claims {
			network := x.network(id)
			if c.legacy {
				add(x.keys.hostEndpoint(network, id.addr(), c.host))
				continue
			}
			in, ok := inSpan[id.net]
			if !ok {
				p := x.keys.claims(network)
				in = p >= sp.key && p < sp.end
				inSpan[id.net] = in
			}
			if in {
				keys[x.keys.endpoint(network, id.addr(), c.host)] = struct{}{}
			}
		}
	}
	return keys
}

// counts returns how many networks, hosts, endpoint claims and ignored
// records of the old layout are stored.
func (x *index) counts() (nets, hosts, claims, old int) {
	return len(x.nets), len(x.hosts), x.nclaims, len(x.oldKeys)
}

// view returns the current view (call resolve first).
func (x *index) view(rev int64) cluster.View {
	return cluster.View{Networks: x.networks, Hosts: x.hostList, Set: x.endpoints, Revision: rev}
}

// endpointFor is the view's entry for an IP's winning claim.
func (x *index) endpointFor(id ipKey, c claim) cluster.RemoteEndpoint {
	return x.endpointWith(id, c, make(net.HardwareAddr, 6))
}

// endpointWith is endpointFor with the MAC copied into mac (6 bytes).
func (x *index) endpointWith(id ipKey, c claim, mac net.HardwareAddr) cluster.RemoteEndpoint {
	copy(mac, c.mac[:])
	return cluster.RemoteEndpoint{Network: x.network(id), IP: id.addr(), MAC: mac, Host: c.host, Name: c.name}
}

// shows reports whether e, the view's entry for an IP, is what claim c
// makes of it.
func shows(e cluster.RemoteEndpoint, c claim) bool {
	return e.Host == c.host && e.Name == c.name && string(e.MAC) == string(c.mac[:])
}

// expect sizes a new index for about n records (a list's count), so that
// its maps do not grow step by step while they are filled.
func (x *index) expect(n int) {
	if len(x.ips) > 0 || n <= 0 {
		return
	}
	x.ips = make(map[ipKey]ipState, n)
	x.dirty = make(map[ipKey]struct{}, n)
	x.macs = newMacIndex(n)
}
