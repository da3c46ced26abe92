package etcd

import (
	"context"
	"maps"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster/etcd/etcdtest"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
)

// keysOf returns the keys and lease IDs under the prefix; nil when etcd
// does not answer.
func keysOf(t *testing.T, c *clientv3.Client) map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, tp+"/", clientv3.WithPrefix())
	if err != nil {
		t.Logf("get: %v", err)
		return nil
	}
	out := map[string]int64{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = kv.Lease
	}
	return out
}

func TestPublisherWritesChangesAndLeases(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	pub, _ := startPublisher(t, c, "ha", "192.0.2.1", 5*time.Second)
	ep := func(ip string, last byte) endpoint.Endpoint {
		return endpoint.Endpoint{Network: "blue", IP: netip.MustParseAddr(ip), MAC: net.HardwareAddr{2, 0, 0, 0, 0, last}}
	}
	k1 := tk.endpoint("blue", netip.MustParseAddr("10.100.0.1"), "ha")
	k2 := tk.endpoint("blue", netip.MustParseAddr("10.100.0.2"), "ha")
	pub.PublishEndpoints([]endpoint.Endpoint{ep("10.100.0.1", 1), ep("10.100.0.2", 2)})
	eventually(t, 5*time.Second, func() bool { return len(keysOf(t, c)) == 3 }, "records not written: %v", keysOf(t, c))
	got := keysOf(t, c)
	lease := got[tk.host("ha")]
	if lease == 0 || got[k1] != lease || got[k2] != lease {
		t.Fatalf("records not bound to one lease: %v", got)
	}
	pub.PublishEndpoints([]endpoint.Endpoint{ep("10.100.0.2", 2)})
	eventually(t, 5*time.Second, func() bool { _, ok := keysOf(t, c)[k1]; return !ok }, "removed endpoint still published")
	eventually(t, 5*time.Second, func() bool { s := pub.State(); return s.Published == 2 && !s.Pending && s.Grants == 1 },
		"state %+v", pub.State())
	// Many endpoints: more than one transaction's worth.
	var many []endpoint.Endpoint
	for i := range 250 {
		many = append(many, ep(netip.AddrFrom4([4]byte{10, 100, 1, byte(i)}).String(), byte(i)))
	}
	pub.PublishEndpoints(many)
	eventually(t, 10*time.Second, func() bool { return len(keysOf(t, c)) == 251 }, "250 endpoints not written")
	if s := pub.State(); s.ForeignWrites != 0 {
		t.Errorf("own writes counted as foreign: %+v", s)
	}
}

func TestPublisherSurvivesEtcdRestart(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	pub, _ := startPublisher(t, c, "ha", "192.0.2.1", 2*time.Second)
	pub.PublishEndpoints([]endpoint.Endpoint{{Network: "blue", IP: netip.MustParseAddr("10.100.0.1"), MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}}})
	eventually(t, 5*time.Second, func() bool { return len(keysOf(t, c)) == 2 }, "records not written")
	srv.Stop()
	time.Sleep(3 * time.Second) // longer than the TTL: keep-alives stop
	// A change made while etcd is down is written when it returns.
	pub.PublishEndpoints([]endpoint.Endpoint{{Network: "blue", IP: netip.MustParseAddr("10.100.0.5"), MAC: net.HardwareAddr{2, 0, 0, 0, 0, 5}}})
	srv.Start()
	k5 := tk.endpoint("blue", netip.MustParseAddr("10.100.0.5"), "ha")
	eventually(t, 10*time.Second, func() bool {
		got := keysOf(t, c)
		_, ok := got[k5]
		return ok && len(got) == 2
	}, "records after the restart: %v", keysOf(t, c))
	time.Sleep(4 * time.Second) // two TTLs: the records must be kept alive
	if got := keysOf(t, c); len(got) != 2 || got[k5] == 0 {
		t.Fatalf("records not kept alive after the restart: %v", got)
	}
	if s := pub.State(); s.Pending || s.Lease == 0 || s.ForeignWrites != 0 {
		t.Errorf("state %+v", s)
	}
}

// TestPublisherMovesHostLayoutClaims: an agent upgraded from the host
// layout finds its claims under hosts/<host>/endpoints/ at start and
// writes them in the claims layout. Until it knows whether other hosts
// read the host layout alone, it keeps (under its new lease) the old keys
// of the claims it still makes and deletes the others; once it knows that
// none does, it deletes them all. Another host's host-layout claims are
// left alone.
func TestPublisherMovesHostLayoutClaims(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g, err := c.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	ip1, ip2 := netip.MustParseAddr("10.100.0.1"), netip.MustParseAddr("10.100.0.2")
	mac1 := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	put(t, c, tk.host("ha"), string(EncodeHost(netip.MustParseAddr("192.0.2.1"))), clientv3.WithLease(g.ID))
	put(t, c, tk.hostEndpoint("blue", ip1, "ha"), string(EncodeEndpoint(mac1)), clientv3.WithLease(g.ID))
	put(t, c, tk.hostEndpoint("blue", ip2, "ha"), string(EncodeEndpoint(net.HardwareAddr{2, 0, 0, 0, 0, 2})), clientv3.WithLease(g.ID))
	other := tk.hostEndpoint("blue", netip.MustParseAddr("10.100.0.3"), "hb")
	put(t, c, other, string(EncodeEndpoint(net.HardwareAddr{2, 0, 0, 0, 0, 3})))
	pub, _ := startPublisher(t, c, "ha", "192.0.2.1", 5*time.Second)
	pub.PublishEndpoints([]endpoint.Endpoint{{Network: "blue", IP: ip1, MAC: mac1}})
	kept := tk.hostEndpoint("blue", ip1, "ha")
	want := []string{other, kept, tk.endpoint("blue", ip1, "ha"), tk.host("ha")}
	slices.Sort(want)
	eventually(t, 10*time.Second, func() bool {
		got := keysOf(t, c)
		return slices.Equal(slices.Sorted(maps.Keys(got)), want) && got[kept] == int64(pub.State().Lease) && got[kept] != int64(g.ID)
	}, "keys %v, want %v, the host layout's claim kept under the new lease", keysOf(t, c), want)
	eventually(t, 5*time.Second, func() bool { s := pub.State(); return !s.Pending }, "state %+v", pub.State())
	pub.SetHostLayoutReaders([]string{"ha"}) // its own record, of the previous run: not another host
	want = slices.DeleteFunc(want, func(k string) bool { return k == kept })
	eventually(t, 10*time.Second, func() bool {
		return slices.Equal(slices.Sorted(maps.Keys(keysOf(t, c))), want)
	}, "keys %v, want %v", keysOf(t, c), want)
	eventually(t, 5*time.Second, func() bool { s := pub.State(); return !s.Pending }, "state %+v", pub.State())
	if s := pub.State(); s.ForeignWrites != 0 {
		t.Errorf("the migration counted as foreign writes: %+v", s)
	}
}

// TestPublisherGuardsClaimPrefixes: a foreign write to this host's claim
// prefix of a network it publishes in, joined after start, is undone and
// counted, like one to its host prefix.
func TestPublisherGuardsClaimPrefixes(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	pub, _ := startPublisher(t, c, "ha", "192.0.2.1", 5*time.Second)
	blue := endpoint.Endpoint{Network: "blue", IP: netip.MustParseAddr("10.100.0.1"), MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}}
	pub.PublishEndpoints([]endpoint.Endpoint{blue})
	eventually(t, 5*time.Second, func() bool { return len(keysOf(t, c)) == 2 && !pub.State().Pending }, "records not written")
	red := endpoint.Endpoint{Network: "red", IP: netip.MustParseAddr("10.200.0.1"), MAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}}
	pub.PublishEndpoints([]endpoint.Endpoint{blue, red})
	eventually(t, 5*time.Second, func() bool { return len(keysOf(t, c)) == 3 && !pub.State().Pending }, "red not written")
	fake := tk.endpoint("red", netip.MustParseAddr("10.200.0.99"), "ha")
	put(t, c, fake, string(EncodeEndpoint(net.HardwareAddr{2, 0, 0, 0, 0, 99})))
	eventually(t, 5*time.Second, func() bool { _, ok := keysOf(t, c)[fake]; return !ok && pub.State().ForeignWrites == 1 },
		"foreign claim in red not undone: %v %+v", keysOf(t, c), pub.State())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Delete(ctx, tk.endpoint("blue", blue.IP, "ha")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { _, ok := keysOf(t, c)[tk.endpoint("blue", blue.IP, "ha")]; return ok },
		"deleted claim in blue not restored: %v %+v", keysOf(t, c), pub.State())
}
