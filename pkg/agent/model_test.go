package agent

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/arp"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/pkg/reconcile"
	"github.com/ofctl-agent/ofctl-agent/pkg/reconcile/reconciletest"
)

type modelRig struct {
	m       *model
	rec     *reconcile.Reconciler
	sw      *reconciletest.Switch
	rejects []string
}

func newRig(t *testing.T) *modelRig {
	r := &modelRig{sw: reconciletest.New()}
	r.rec = reconcile.New(reconcile.Config{Switch: r.sw, Regenerate: func(o reconcile.Owner) []flow.Flow { return r.m.regenerate(o) }, Rank: ownerRank})
	r.m = newModel("ha", r.rec, func(kind string, err error) { r.rejects = append(r.rejects, kind+": "+err.Error()) })
	return r
}

func (r *modelRig) flush(t *testing.T) {
	t.Helper()
	if _, err := r.rec.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// switchMatchesBuild asserts the fake switch holds exactly pipeline.Build of
// the model's state: incremental owners give the same flows as a full build.
func (r *modelRig) switchMatchesBuild(t *testing.T) {
	t.Helper()
	want := pipeline.Build(r.m.state(true))
	if len(want) != len(r.sw.Flows) {
		t.Fatalf("switch has %d flows, Build gives %d", len(r.sw.Flows), len(want))
	}
	for _, f := range want {
		got, ok := r.sw.Flows[f.Key()]
		if !ok || got.Content() != f.Content() {
			t.Fatalf("switch lacks or differs on %s", f)
		}
	}
}

func view(blueVNI uint32, hosts ...cluster.Host) cluster.View {
	v := cluster.View{Networks: []cluster.Network{
		{Name: "blue", VNI: blueVNI, Subnet: netip.MustParsePrefix("10.100.0.0/16")},
		{Name: "red", VNI: 200, Subnet: netip.MustParsePrefix("10.200.0.0/16")},
	}, Hosts: hosts}
	v.Normalize()
	return v
}

func host(name, ip string, ranges map[string]string) cluster.Host {
	h := cluster.Host{Name: name, TunnelIP: netip.MustParseAddr(ip), Ranges: map[string]netip.Prefix{}}
	for n, p := range ranges {
		h.Ranges[n] = netip.MustParsePrefix(p)
	}
	return h
}

func ep(port string, ofport uint32, network, ip string) endpoint.Endpoint {
	a := netip.MustParseAddr(ip)
	return endpoint.Endpoint{Port: port, OFPort: ofport, Network: network, IP: a, MAC: arp.DerivedMAC(a)}
}

func TestModelIncrementalEqualsFullBuild(t *testing.T) {
	r := newRig(t)
	self := host("ha", "192.0.2.1", map[string]string{"blue": "10.100.1.0/24"})
	hb := host("hb", "192.0.2.2", map[string]string{"blue": "10.100.2.0/24", "red": "10.200.2.0/24"})
	hc := host("hc", "192.0.2.3", map[string]string{"red": "10.200.3.0/24"})
	eps := []endpoint.Endpoint{ep("p1", 11, "blue", "10.100.1.10"), ep("p2", 12, "red", "10.200.1.10")}
	r.m.setTunnelPort(100, nil)
	r.m.setView(view(100, self, hb, hc), eps)
	r.flush(t)
	r.switchMatchesBuild(t)
	if n := len(r.m.state(true).Hosts); n != 2 {
		t.Fatalf("self counted as a remote host: %d remote hosts", n)
	}

	steps := []struct {
		name string
		do   func()
	}{
		{"endpoint added", func() { r.m.setEndpoint(ep("p3", 13, "blue", "10.100.1.11")) }},
		{"endpoint removed", func() { r.m.removeEndpoint(ep("p1", 11, "blue", "10.100.1.10")) }},
		{"host removed", func() { r.m.setView(view(100, self, hb), activeOf(r.m)) }},
		{"VNI changed", func() { r.m.setView(view(101, self, hb), activeOf(r.m)) }},
		{"tunnel port gone", func() { r.m.setTunnelPort(0, activeOf(r.m)) }},
		{"tunnel port back", func() { r.m.setTunnelPort(100, activeOf(r.m)) }},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.do()
			r.flush(t)
			r.switchMatchesBuild(t)
		})
	}
	if len(r.rejects) != 0 {
		t.Fatalf("unexpected rejects: %v", r.rejects)
	}
}

// activeOf rebuilds the endpoint list the registry would hold.
func activeOf(m *model) []endpoint.Endpoint {
	var out []endpoint.Endpoint
	for _, e := range m.endpoints {
		out = append(out, endpoint.Endpoint{Port: e.Port, OFPort: e.OFPort, Network: e.Network, IP: e.IP, MAC: e.MAC})
	}
	return out
}

func TestModelRejectsEndpointsThatDoNotFit(t *testing.T) {
	r := newRig(t)
	r.m.setTunnelPort(100, nil)
	r.m.setView(view(100), nil)
	r.flush(t)
	before := len(r.sw.Flows)
	cases := []endpoint.Endpoint{
		ep("unknown-net", 11, "green", "10.100.1.10"),
		ep("outside", 12, "blue", "10.200.1.10"),
		ep("tunnel-ofport", 100, "blue", "10.100.1.12"),
	}
	for _, e := range cases {
		r.m.setEndpoint(e)
	}
	r.flush(t)
	if len(r.sw.Flows) != before || len(r.rejects) != len(cases) {
		t.Fatalf("flows %d -> %d, rejects %v", before, len(r.sw.Flows), r.rejects)
	}
	// When the network appears in the view, the endpoint is programmed.
	v := view(100)
	v.Networks = append(v.Networks, cluster.Network{Name: "green", VNI: 300, Subnet: netip.MustParsePrefix("10.100.0.0/16")})
	v.Normalize()
	r.m.setView(v, []endpoint.Endpoint{cases[0]})
	r.flush(t)
	r.switchMatchesBuild(t)
	if !slices.ContainsFunc(r.m.state(true).Endpoints, func(e pipeline.Endpoint) bool { return e.Port == "unknown-net" }) {
		t.Fatal("endpoint not programmed once its network exists")
	}
}

func remote(network, ip, mac, host string) cluster.RemoteEndpoint {
	m, err := net.ParseMAC(mac)
	if err != nil {
		panic(err)
	}
	return cluster.RemoteEndpoint{Network: network, IP: netip.MustParseAddr(ip), MAC: m, Host: host}
}

// TestModelRemoteEndpoints (etcd mode): view changes cost work and
// flow_mods proportional to the change, and still equal a full build,
// whether the view carries the source's delta or the model computes it.
func TestModelRemoteEndpoints(t *testing.T) {
	for _, withDelta := range []bool{false, true} {
		t.Run(map[bool]string{false: "diff", true: "delta"}[withDelta], func(t *testing.T) {
			testModelRemoteEndpoints(t, withDelta)
		})
	}
}

func testModelRemoteEndpoints(t *testing.T, withDelta bool) {
	r := newRig(t)
	self := host("ha", "192.0.2.1", nil)
	hb, hc := host("hb", "192.0.2.2", nil), host("hc", "192.0.2.3", nil)
	v := view(100, self, hb, hc)
	for i := 0; i < 100; i++ {
		v.Endpoints = append(v.Endpoints, remote("blue", fmt.Sprintf("10.100.2.%d", i+1), fmt.Sprintf("02:00:00:00:02:%02x", i), "hb"))
	}
	v.Endpoints = append(v.Endpoints, remote("blue", "10.100.1.5", "02:00:00:00:01:05", "ha")) // our own, published
	v.Normalize()
	v.Revision = 1
	r.m.setTunnelPort(100, nil)
	r.m.setView(v, nil)
	r.flush(t)
	r.switchMatchesBuild(t)

	step := func(name string, wantMods int, change func(v *cluster.View)) {
		t.Run(name, func(t *testing.T) {
			nv := v
			nv.Hosts = slices.Clone(v.Hosts)
			nv.Endpoints = slices.Clone(v.Endpoints)
			change(&nv)
			nv.Normalize()
			nv.Revision = v.Revision + 1
			if withDelta {
				d := cluster.Diff(v, nv)
				nv.Delta = &d
			}
			before := r.rec.Stats().FlowMods
			r.m.setView(nv, nil)
			r.flush(t)
			r.switchMatchesBuild(t)
			if got := r.rec.Stats().FlowMods - before; got != uint64(wantMods) {
				for _, m := range r.sw.Commits[len(r.sw.Commits)-1] {
					t.Logf("cmd %d table %d prio %d cookie %#x", m.Command, m.TableId, m.Priority, m.Cookie)
				}
				t.Fatalf("%d flow_mods, want %d", got, wantMods)
			}
			v = nv
		})
	}
	byIP := func(v *cluster.View, ip string) int {
		return slices.IndexFunc(v.Endpoints, func(e cluster.RemoteEndpoint) bool { return e.IP.String() == ip })
	}
	step("one endpoint added", 2, func(v *cluster.View) {
		v.Endpoints = append(v.Endpoints, remote("blue", "10.100.3.1", "02:00:00:00:03:01", "hc"))
	})
	step("one endpoint moves to another host", 1, func(v *cluster.View) {
		v.Endpoints[byIP(v, "10.100.2.7")].Host = "hc" // only its l2_forward flow changes
	})
	step("one endpoint changes MAC", 3, func(v *cluster.View) {
		v.Endpoints[byIP(v, "10.100.2.8")].MAC = net.HardwareAddr{2, 0, 0, 0, 0xee, 8}
	})
	step("one endpoint removed", 2, func(v *cluster.View) {
		v.Endpoints = slices.Delete(v.Endpoints, byIP(v, "10.100.2.9"), byIP(v, "10.100.2.9")+1)
	})
	step("the same view again", 0, func(*cluster.View) {})
	step("host and its endpoints gone", 1+2*98, func(v *cluster.View) {
		v.Hosts = slices.DeleteFunc(v.Hosts, func(h cluster.Host) bool { return h.Name == "hb" })
		v.Endpoints = slices.DeleteFunc(v.Endpoints, func(e cluster.RemoteEndpoint) bool { return e.Host == "hb" })
	})
	step("endpoint before its host", 0, func(v *cluster.View) {
		v.Endpoints = append(v.Endpoints, remote("blue", "10.100.4.1", "02:00:00:00:04:01", "hd"))
	})
	step("its host appears", 1+2, func(v *cluster.View) {
		v.Hosts = append(v.Hosts, host("hd", "192.0.2.4", nil))
	})
	step("host's tunnel IP changes", 2+2, func(v *cluster.View) {
		i := slices.IndexFunc(v.Hosts, func(h cluster.Host) bool { return h.Name == "hc" })
		v.Hosts[i] = host("hc", "192.0.2.33", nil) // its tunnel flow (delete, add), its 2 endpoints' l2_forward flows
	})
	if len(r.rejects) != 1 || !strings.Contains(r.rejects[0], `unknown network or host "hd"`) {
		t.Fatalf("rejects: %q, want one for the endpoint whose host was not there yet", r.rejects)
	}
}

// TestModelAppliesTheViewsDelta: setView applies the delta a view carries
// when it starts at the view in force, computes the change itself when it
// does not, and ignores a view with the revision in force. Each case gives
// a delta that says nothing changed while one endpoint was added: only the
// flow_mods tell which path ran.
func TestModelAppliesTheViewsDelta(t *testing.T) {
	for _, c := range []struct {
		name     string
		from     int64 // the delta's From (the view in force is revision 1)
		revision int64 // the new view's revision
		wantMods uint64
	}{
		{"delta from the view in force is applied", 1, 2, 0},
		{"stale delta: the change is computed", 7, 2, 2},
		{"same revision: ignored", 1, 1, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			v := view(100, host("ha", "192.0.2.1", nil), host("hb", "192.0.2.2", nil))
			v.Revision = 1
			r.m.setTunnelPort(100, nil)
			r.m.setView(v, nil)
			r.flush(t)
			nv := v
			nv.Endpoints = []cluster.RemoteEndpoint{remote("blue", "10.100.2.1", "02:00:00:00:02:01", "hb")}
			nv.Revision, nv.Delta = c.revision, &cluster.Delta{From: c.from}
			before := r.rec.Stats().FlowMods
			r.m.setView(nv, nil)
			r.flush(t)
			if got := r.rec.Stats().FlowMods - before; got != c.wantMods {
				t.Fatalf("%d flow_mods, want %d", got, c.wantMods)
			}
		})
	}
}

// Two ports whose cookie object IDs collide (FNV-32 of "endpoint/<port>")
// must still be two owners: one must not replace the other's flows.
func TestModelCookieCollisionKeepsBothEndpoints(t *testing.T) {
	a, b := collidingPorts(t)
	r := newRig(t)
	r.m.setTunnelPort(100, nil)
	r.m.setView(view(100), nil)
	r.m.setEndpoint(ep(a, 11, "blue", "10.100.1.10"))
	r.m.setEndpoint(ep(b, 12, "blue", "10.100.1.11"))
	r.flush(t)
	r.switchMatchesBuild(t)
	if n := len(r.m.state(true).Endpoints); n != 2 {
		t.Fatalf("%d endpoints programmed", n)
	}
}

// Static mode: an address inside another host's range is that host's (the
// others send its traffic there), so a local endpoint may not take it. The
// refusal is reported once, and follows the ranges when the view changes.
func TestModelRefusesAddressesOfAnotherHostsRange(t *testing.T) {
	r := newRig(t)
	self := host("ha", "192.0.2.1", map[string]string{"blue": "10.100.1.0/24"})
	hb := func(blue string) cluster.Host { return host("hb", "192.0.2.2", map[string]string{"blue": blue}) }
	rogue, own, free := ep("rogue", 11, "blue", "10.100.2.7"), ep("own", 12, "blue", "10.100.1.7"), ep("free", 13, "blue", "10.100.9.7")
	active := []endpoint.Endpoint{rogue, own, free}
	r.m.setTunnelPort(100, nil)
	r.m.setView(view(100, self, hb("10.100.2.0/24")), active)
	r.flush(t)
	programmed := func() []string {
		var out []string
		for _, e := range r.m.state(true).Endpoints {
			out = append(out, e.Port)
		}
		slices.Sort(out)
		return out
	}
	if got := programmed(); !slices.Equal(got, []string{"free", "own"}) {
		t.Fatalf("programmed %v, want free and own (rogue is in hb's range)", got)
	}
	r.switchMatchesBuild(t)
	if len(r.rejects) != 1 || !strings.Contains(r.rejects[0], "endpoint: interface rogue") ||
		!strings.Contains(r.rejects[0], "inside host hb's range 10.100.2.0/24") {
		t.Fatalf("rejects %q", r.rejects)
	}
	if why := r.m.refusal("rogue"); !strings.Contains(why, "hb's range") {
		t.Fatalf("refusal(rogue) = %q", why)
	}
	r.m.setView(view(101, self, hb("10.100.2.0/24")), active) // a rebuild: not reported again
	r.flush(t)
	if len(r.rejects) != 1 {
		t.Fatalf("reported again: %q", r.rejects)
	}
	// hb's range moves away from rogue's address and onto free's.
	r.m.setView(view(101, self, hb("10.100.9.0/24")), active)
	r.flush(t)
	if got := programmed(); !slices.Equal(got, []string{"own", "rogue"}) {
		t.Fatalf("after the range moved: programmed %v, want own and rogue", got)
	}
	r.switchMatchesBuild(t)
	if len(r.rejects) != 2 || !strings.Contains(r.rejects[1], "interface free") || r.m.refusal("rogue") != "" {
		t.Fatalf("rejects %q, refusal(rogue) %q", r.rejects, r.m.refusal("rogue"))
	}
}

// collidingPorts finds two port names whose endpoint cookies are equal (a
// birthday search: about 80,000 names for a 32-bit object hash).
func collidingPorts(t *testing.T) (string, string) {
	t.Helper()
	seen := map[uint64]string{}
	for i := range 1 << 22 {
		name := fmt.Sprintf("v%08x", i)
		c := pipeline.Endpoint{Port: name}.Cookie()
		if prev, ok := seen[c]; ok {
			return prev, name
		}
		seen[c] = name
	}
	t.Fatal("no two of 4M port names share an endpoint cookie: is the cookie's object ID wider than 32 bits?")
	return "", ""
}
