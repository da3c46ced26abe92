package etcd

import (
	"context"
	"net"
	"net/netip"
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
