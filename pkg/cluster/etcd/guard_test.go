package etcd

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster/etcd/etcdtest"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
)

// getKV returns a key's value and lease ("" and 0 when absent).
func getKV(t *testing.T, c *clientv3.Client, key string) (string, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, key)
	if err != nil || len(resp.Kvs) == 0 {
		return "", 0
	}
	return string(resp.Kvs[0].Value), resp.Kvs[0].Lease
}

// TestPublisherUndoesForeignWrites: a writer other than the host's agent
// changes the host's record (redirecting its tunnel), adds an endpoint
// claim in its name and deletes one of its claims. Every other host's view
// must come back to what the agent publishes, under the agent's lease.
func TestPublisherUndoesForeignWrites(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	seed(t, c)
	h := startSource(t, c, nil)
	pub, _ := startPublisher(t, c, "hd", "192.0.2.4", 5*time.Second)
	mine := endpoint.Endpoint{Network: "red", IP: netip.MustParseAddr("10.200.0.4"), MAC: net.HardwareAddr{2, 0, 0, 0, 0, 4}}
	pub.PublishEndpoints([]endpoint.Endpoint{mine})
	hostKey := HostKey(tp, "hd")
	mineKey := EndpointKey(tp, "red", mine.IP, "hd")
	eventually(t, 5*time.Second, func() bool { return h.hasHost("hd") && h.has("10.200.0.4") }, "published host not seen")
	want, lease := getKV(t, c, hostKey)

	// The host record: another tunnel IP would send hd's traffic elsewhere.
	put(t, c, hostKey, string(EncodeHost(netip.MustParseAddr("198.51.100.66"))))
	eventually(t, 5*time.Second, func() bool {
		v, l := getKV(t, c, hostKey)
		return v == want && l == lease
	}, "a foreign overwrite of the host record was not undone")
	eventually(t, 5*time.Second, func() bool {
		v, _ := h.src.Current()
		got, ok := v.Host("hd")
		return ok && got.TunnelIP == netip.MustParseAddr("192.0.2.4")
	}, "the view keeps the foreign tunnel IP")

	// A claim in the host's name that it never made, and one of its
	// claims deleted.
	fake := EndpointKey(tp, "red", netip.MustParseAddr("10.200.0.99"), "hd")
	put(t, c, fake, `{"version":1,"mac":"02:00:00:00:00:99"}`)
	remove(t, c, mineKey)
	eventually(t, 10*time.Second, func() bool {
		f, _ := getKV(t, c, fake)
		m, l := getKV(t, c, mineKey)
		return f == "" && m != "" && l == lease
	}, "a foreign claim or delete was not undone")
	eventually(t, 5*time.Second, func() bool { return !h.has("10.200.0.99") && h.has("10.200.0.4") },
		"the view keeps the foreign claim or lost the deleted one")
	s := pub.State()
	if s.ForeignWrites < 3 || s.Grants != 1 {
		t.Errorf("state %+v: want 3 foreign writes or more, one lease", s)
	}
	if got := metricValue(t, NewCollector(h.src, pub), "ofctl_agent_etcd_foreign_writes_total"); got != float64(s.ForeignWrites) {
		t.Errorf("ofctl_agent_etcd_foreign_writes_total %v, want %d", got, s.ForeignWrites)
	}
}

// metricValue returns the value of a metric of c: the one without
// labels, or with label (name, value) if given.
func metricValue(t *testing.T, c prometheus.Collector, name string, label ...string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			lp := m.GetLabel()
			if len(label) == 0 && len(lp) == 0 || len(label) == 2 && len(lp) == 1 && lp[0].GetName() == label[0] && lp[0].GetValue() == label[1] {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s%q", name, label)
	return 0
}

// TestPublisherOwnChangesAreNotForeign: the agent's own writes and
// deletes, an earlier run's records and a lost lease are not reported.
func TestPublisherOwnChangesAreNotForeign(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	ep := func(i byte) endpoint.Endpoint {
		return endpoint.Endpoint{Network: "blue", IP: netip.AddrFrom4([4]byte{10, 100, 0, i}), MAC: net.HardwareAddr{2, 0, 0, 0, 0, i}}
	}
	// An earlier run: two claims under a lease of its own.
	ctx := context.Background()
	g, err := c.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	put(t, c, HostKey(tp, "ha"), string(EncodeHost(netip.MustParseAddr("192.0.2.1"))), clientv3.WithLease(g.ID))
	for _, i := range []byte{1, 2} {
		put(t, c, EndpointKey(tp, "blue", ep(i).IP, "ha"), string(EncodeEndpoint(ep(i).MAC)), clientv3.WithLease(g.ID))
	}
	pub, _ := startPublisher(t, c, "ha", "192.0.2.1", 3*time.Second)
	pub.PublishEndpoints([]endpoint.Endpoint{ep(2), ep(3)}) // 1 went while the agent was down
	eventually(t, 5*time.Second, func() bool {
		got := keysOf(t, c)
		l := got[HostKey(tp, "ha")]
		_, gone := got[EndpointKey(tp, "blue", ep(1).IP, "ha")]
		return len(got) == 3 && !gone && l != int64(g.ID) && got[EndpointKey(tp, "blue", ep(2).IP, "ha")] == l
	}, "the earlier run's records were not taken over: %v", keysOf(t, c))
	pub.PublishEndpoints([]endpoint.Endpoint{ep(3)})
	eventually(t, 5*time.Second, func() bool { return len(keysOf(t, c)) == 2 }, "own delete not done")
	// The lease is revoked (as an expiry would): everything is written
	// again under a new one.
	if _, err := c.Revoke(ctx, pub.State().Lease); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool { s := pub.State(); return s.Grants == 2 && !s.Pending && len(keysOf(t, c)) == 2 },
		"not written again after the lease was lost: %+v %v", pub.State(), keysOf(t, c))
	if s := pub.State(); s.ForeignWrites != 0 {
		t.Errorf("own changes reported as foreign: %+v", s)
	}
}

// TestPublisherDuplicateNodeName: two agents with one node name each see
// the other's writes as foreign; they take turns at a bounded rate.
func TestPublisherDuplicateNodeName(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	a, _ := startPublisher(t, c, "ha", "192.0.2.1", 5*time.Second)
	eventually(t, 5*time.Second, func() bool { return !a.State().Pending }, "first agent never published")
	b, _ := startPublisher(t, c, "ha", "192.0.2.2", 5*time.Second)
	eventually(t, 10*time.Second, func() bool { return a.State().ForeignWrites > 0 && b.State().ForeignWrites > 0 },
		"a second agent with the same name was not noticed: %+v %+v", a.State(), b.State())
	start := etcdtest.Revision(t, c)
	time.Sleep(6 * time.Second)
	// Undoing backs off 1, 2, 4 s...: a few writes each, not a tight loop.
	if n := etcdtest.Revision(t, c) - start; n > 12 {
		t.Errorf("%d writes in 6 s: the two agents fight without backing off", n)
	}
}

// TestPublisherMigratesOldLayout: at start the agent removes its own
// records of the old layout (revoking the lease they were written under),
// and nobody else's.
func TestPublisherMigratesOldLayout(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	old := map[string][]string{}
	for _, host := range []string{"ha", "hb"} {
		g, err := c.Grant(ctx, 60)
		if err != nil {
			t.Fatal(err)
		}
		keys := []string{tp + "/hosts/" + host, tp + "/endpoints/blue/10.100.0.1/" + host}
		put(t, c, keys[0], `{"version":1,"tunnel_ip":"192.0.2.1"}`, clientv3.WithLease(g.ID))
		put(t, c, keys[1], `{"version":1,"mac":"02:00:00:00:00:01"}`, clientv3.WithLease(g.ID))
		old[host] = keys
	}
	pub, _ := startPublisher(t, c, "ha", "192.0.2.1", 5*time.Second)
	eventually(t, 5*time.Second, func() bool {
		got := keysOf(t, c)
		_, a0 := got[old["ha"][0]]
		_, a1 := got[old["ha"][1]]
		_, b0 := got[old["hb"][0]]
		_, b1 := got[old["hb"][1]]
		_, now := got[HostKey(tp, "ha")]
		return !a0 && !a1 && b0 && b1 && now
	}, "old records not migrated: %v", keysOf(t, c))
	if s := pub.State(); s.ForeignWrites != 0 {
		t.Errorf("state %+v", s)
	}
}
