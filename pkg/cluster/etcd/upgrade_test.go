package etcd

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster/etcd/etcdtest"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
)

// Rolling upgrades from the host layout: the previous version's agents
// read claims under hosts/<host>/endpoints/ alone and write host records
// without claims_layout.

// oldHostRecord is a host record as the previous version wrote it.
func oldHostRecord(ip string) string { return fmt.Sprintf(`{"version":1,"tunnel_ip":%q}`, ip) }

// TestIndexHostLayoutReaders: the index knows which live hosts read the
// host layout alone (valid records without claims_layout) and says when
// that set changes.
func TestIndexHostLayoutReaders(t *testing.T) {
	x := newIndex(tk, nil, nil)
	newHost := func(name, ip string, create int64) op {
		return op{tk.host(name), string(EncodeHost(netip.MustParseAddr(ip))), create}
	}
	steps := []struct {
		name    string
		ops     []op
		want    []string
		changed bool
	}{
		{"a new index tells even none", nil, []string{}, true},
		{"three records of the previous version", base(), []string{"ha", "hb", "hc"}, true},
		{"claims change nothing", []op{putEP("blue", "10.100.0.1", "ha", "02:00:00:00:00:01", 10),
			putHostLayoutEP("blue", "10.100.0.1", "ha", "02:00:00:00:00:01", 11)}, nil, false},
		{"the same record again", []op{putHost("hb", "192.0.2.2", 4)}, nil, false},
		{"ha upgraded", []op{newHost("ha", "192.0.2.1", 3)}, []string{"hb", "hc"}, true},
		{"hb gone", []op{del(tk.host("hb"))}, []string{"hc"}, true},
		{"hc's record broken", []op{{tk.host("hc"), `{"version":1,"tunnel_ip":"nope"}`, 5}}, []string{}, true},
		{"a new host upgraded", []op{newHost("hd", "192.0.2.4", 12)}, nil, false},
		{"hd downgraded", []op{putHost("hd", "192.0.2.4", 12)}, []string{"hd"}, true},
		{"hc repaired, as it was", []op{putHost("hc", "192.0.2.3", 5)}, []string{"hc", "hd"}, true},
	}
	for _, st := range steps {
		apply(x, st.ops...)
		got, changed := x.takeHostReaders()
		if changed != st.changed || changed && !slices.Equal(got, st.want) {
			t.Errorf("%s: readers %q (changed %v), want %q (changed %v)", st.name, got, changed, st.want, st.changed)
		}
	}
}

// upgradedAgent is a publisher and an unscoped or scoped source wired as
// the agent wires them (cmd/ofctl-agent/backend.go).
type upgradedAgent struct {
	pub *Publisher
	h   *harness
}

func startUpgraded(t *testing.T, c *clientv3.Client, host, ip string, scoped bool, dropSpread time.Duration) upgradedAgent {
	t.Helper()
	pub, _ := startPublisherWith(t, c, host, ip, 5*time.Second, func(p *Publisher) { p.dropSpread = dropSpread })
	h := &harness{}
	src, err := New(Config{Client: c, Prefix: tp, Scoped: scoped, Logger: testLogger(), OnHostLayoutReaders: pub.SetHostLayoutReaders,
		OnReject: h.reject})
	if err != nil {
		t.Fatal(err)
	}
	h.src = src
	if scoped {
		src.SetInterest([]string{"blue"})
	}
	runSource(t, src)
	return upgradedAgent{pub, h}
}

// hostLayoutClaims is what an agent of the previous version reads: the
// claims under hosts/<host>/endpoints/, as "host ip mac", with their
// leases; read with a plain range read, apart from the code under test.
func hostLayoutClaims(t *testing.T, c *clientv3.Client) (map[string]int64, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, tp+"/hosts/", clientv3.WithPrefix())
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, kv := range resp.Kvs {
		parts := strings.Split(strings.TrimPrefix(string(kv.Key), tp+"/hosts/"), "/")
		if len(parts) != 4 || parts[1] != "endpoints" {
			continue
		}
		var r EndpointRecord
		if err := decode(string(kv.Key), kv.Value, &r, func() int { return r.Version }); err != nil {
			return nil, err
		}
		out[parts[0]+" "+parts[3]+" "+r.MAC] = kv.Lease
	}
	return out, nil
}

func (a upgradedAgent) sees(host, ip, mac string) bool {
	v, ok := a.h.src.Current()
	if !ok {
		return false
	}
	return slices.ContainsFunc(v.EndpointList(), func(e cluster.RemoteEndpoint) bool {
		return e.Host == host && e.IP.String() == ip && e.MAC.String() == mac
	})
}

// TestRollingUpgradeFromHostLayout: an agent of the previous version (ha:
// its records written as it wrote them) and an upgraded one (hb) each see
// the other's endpoint: hb's claim is also written in the host layout
// while ha's record is of the previous version, and deleted once ha is
// upgraded (after hb's delay, not before) or gone. The copies are neither foreign writes to hb nor
// problems to report, and the upgraded readers hold one claim per IP.
func TestRollingUpgradeFromHostLayout(t *testing.T) {
	forModes(t, testRollingUpgradeFromHostLayout)
}

func testRollingUpgradeFromHostLayout(t *testing.T, scoped bool) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	put(t, c, tk.network("blue"), `{"version":1,"vni":100,"subnet":"10.100.0.0/16"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	old, err := c.Grant(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	const macA, macB = "02:00:00:00:00:01", "02:00:00:00:00:02"
	put(t, c, tk.host("ha"), oldHostRecord("192.0.2.1"), clientv3.WithLease(old.ID))
	put(t, c, tk.hostEndpoint("blue", netip.MustParseAddr("10.100.0.1"), "ha"), `{"version":1,"mac":"`+macA+`"}`, clientv3.WithLease(old.ID))

	b := startUpgraded(t, c, "hb", "192.0.2.2", scoped, 4*time.Second)
	delay := b.pub.dropDelay()
	mac, _ := net.ParseMAC(macB)
	b.pub.PublishEndpoints([]endpoint.Endpoint{{Network: "blue", IP: netip.MustParseAddr("10.100.0.2"), MAC: mac}})
	copyB := tk.hostEndpoint("blue", netip.MustParseAddr("10.100.0.2"), "hb")
	claimB := tk.endpoint("blue", netip.MustParseAddr("10.100.0.2"), "hb")

	// ha reads hb's copy; hb reads ha's claim and its own.
	both := map[string]int64{"ha 10.100.0.1 " + macA: int64(old.ID)}
	eventually(t, 20*time.Second, func() bool {
		lease := int64(b.pub.State().Lease)
		both["hb 10.100.0.2 "+macB] = lease
		got, err := hostLayoutClaims(t, c)
		return err == nil && lease != 0 && maps.Equal(got, both) && !b.pub.State().Pending
	}, "the host layout does not hold both hosts' claims (hb's under its lease): %v", keysOf(t, c))
	if v, l := getKV(t, c, claimB); v != string(EncodeEndpoint(mac)) || l != int64(b.pub.State().Lease) {
		t.Fatalf("hb's claim in the claims layout: %q lease %x", v, l)
	}
	eventually(t, 10*time.Second, func() bool { return b.sees("ha", "10.100.0.1", macA) && b.sees("hb", "10.100.0.2", macB) },
		"hb does not see both endpoints")
	observer := startSourceWith(t, c, nil, scoped) // another upgraded host
	eventually(t, 10*time.Second, func() bool { return observer.has("10.100.0.1") && observer.has("10.100.0.2") },
		"an upgraded observer does not see both endpoints")
	for _, h := range []*harness{b.h, observer} {
		s := h.src.State()
		if s.Claims != 2 || s.OldLayout != 0 || h.String() != "[]" {
			t.Errorf("claims %d (want 2: hb's copy is the same claim), old-layout records %d, reports %v", s.Claims, s.OldLayout, h)
		}
	}
	readers := func() float64 {
		return metricValue(t, NewCollector(b.h.src, b.pub), "ofctl_agent_etcd_host_layout_readers")
	}
	if got := readers(); got != 1 {
		t.Errorf("ofctl_agent_etcd_host_layout_readers %v while ha runs the previous version, want 1", got)
	}

	// ha upgraded: its record says so (its claims move as
	// TestPublisherMovesHostLayoutClaims shows). hb's copy goes after hb's
	// delay (hb learns of the record after this put: never earlier), its
	// claim stays.
	put(t, c, tk.host("ha"), string(EncodeHost(netip.MustParseAddr("192.0.2.1"))), clientv3.WithLease(old.ID))
	upgraded := time.Now()
	time.Sleep(delay / 2)
	if v, _ := getKV(t, c, copyB); v == "" && time.Since(upgraded) < delay {
		t.Fatalf("hb's copy deleted within %v of ha's upgrade, before hb's delay of %v", time.Since(upgraded), delay)
	}
	eventually(t, 20*time.Second, func() bool {
		v, _ := getKV(t, c, copyB)
		return v == "" && !b.pub.State().Pending
	}, "hb's copy in the host layout not deleted after ha's upgrade: %v", keysOf(t, c))
	if v, _ := getKV(t, c, claimB); v == "" || !b.sees("hb", "10.100.0.2", macB) || !observer.has("10.100.0.2") {
		t.Errorf("hb's claim lost with its copy: %q", v)
	}
	if got := readers(); got != 0 {
		t.Errorf("ofctl_agent_etcd_host_layout_readers %v once ha is upgraded, want 0", got)
	}

	// ha back to the previous version (a rollback), then gone.
	put(t, c, tk.host("ha"), oldHostRecord("192.0.2.1"), clientv3.WithLease(old.ID))
	eventually(t, 20*time.Second, func() bool { v, _ := getKV(t, c, copyB); return v != "" }, "hb's copy not written again for ha")
	if _, err := c.Revoke(ctx, old.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() bool {
		got, err := hostLayoutClaims(t, c)
		return err == nil && len(got) == 0
	}, "host-layout claims left after ha is gone: %v", keysOf(t, c))
	eventually(t, 10*time.Second, func() bool { return b.sees("hb", "10.100.0.2", macB) && !b.sees("ha", "10.100.0.1", macA) },
		"hb's view after ha left")
	if s := b.pub.State(); s.ForeignWrites != 0 || s.Grants != 1 {
		t.Errorf("hb's publisher: %+v (its copies counted as foreign writes?)", s)
	}
	for _, h := range []*harness{b.h, observer} {
		if s := h.src.State(); s.OldLayout != 0 || h.String() != "[]" {
			t.Errorf("old-layout records %d, reports %v", s.OldLayout, h)
		}
	}
}

// TestPublisherCopiesLinger: once no other host reads the host layout
// alone, the copies stay until this host's delay has passed (an hour
// here): claims published meanwhile get copies too, and a host of the
// previous version returning cancels the deletion. Observed with a watch
// of the host layout from the first copy's revision: no deletion.
func TestPublisherCopiesLinger(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	pub, _ := startPublisherWith(t, c, "hb", "192.0.2.2", 5*time.Second, func(p *Publisher) { p.dropSpread = time.Hour })
	ep := func(last byte) endpoint.Endpoint {
		return endpoint.Endpoint{Network: "blue", IP: netip.AddrFrom4([4]byte{10, 100, 0, last}), MAC: net.HardwareAddr{2, 0, 0, 0, 0, last}}
	}
	copyOf := func(last byte) string {
		return tk.hostEndpoint("blue", netip.AddrFrom4([4]byte{10, 100, 0, last}), "hb")
	}
	pub.SetHostLayoutReaders([]string{"ha"})
	pub.PublishEndpoints([]endpoint.Endpoint{ep(2)})
	eventually(t, 10*time.Second, func() bool { v, _ := getKV(t, c, copyOf(2)); return v != "" }, "no copy while ha reads the host layout")
	if d := pub.dropDelay(); d <= 0 || d >= time.Hour {
		t.Fatalf("hb's delay %v is not within the spread", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := c.Watch(ctx, tp+"/hosts/hb/endpoints/", clientv3.WithPrefix(), clientv3.WithRev(etcdtest.Revision(t, c)))

	pub.SetHostLayoutReaders(nil) // ha upgraded
	pub.PublishEndpoints([]endpoint.Endpoint{ep(2), ep(3)})
	eventually(t, 10*time.Second, func() bool { v, _ := getKV(t, c, copyOf(3)); return v != "" },
		"a claim published during the delay has no copy: %v", keysOf(t, c))
	pub.SetHostLayoutReaders([]string{"hc"}) // another old host returns
	pub.SetHostLayoutReaders(nil)
	pub.PublishEndpoints([]endpoint.Endpoint{ep(2), ep(3), ep(4)})
	eventually(t, 10*time.Second, func() bool { v, _ := getKV(t, c, copyOf(4)); return v != "" && !pub.State().Pending },
		"copies: %v", keysOf(t, c))
	cancel()
	for resp := range w {
		for _, ev := range resp.Events {
			if ev.Type == clientv3.EventTypeDelete {
				t.Errorf("%s deleted during the delay", ev.Kv.Key)
			}
		}
	}
}
