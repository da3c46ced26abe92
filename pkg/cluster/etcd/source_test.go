package etcd

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster/etcd/etcdtest"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
)

// Integration tests: a real etcd runs in the test process.

func eventually(t *testing.T, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf(format, args...)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func put(t *testing.T, c *clientv3.Client, key, value string, opts ...clientv3.OpOption) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, key, value, opts...); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, c *clientv3.Client, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
}

func seed(t *testing.T, c *clientv3.Client) {
	t.Helper()
	for _, o := range base() {
		put(t, c, o.key, o.value)
	}
	put(t, c, tk.endpoint("blue", netip.MustParseAddr("10.100.0.1"), "ha"), `{"version":1,"mac":"02:00:00:00:00:01"}`)
}

// harness runs a Source against srv and records its rejects.
type harness struct {
	src *Source
	mu  sync.Mutex
	rep reports
}

// String formats the reports (locked: the source may be adding one).
func (h *harness) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return fmt.Sprintf("%q", []string(h.rep))
}

// reject records a problem the source reports (Config.OnReject).
func (h *harness) reject(kind string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.rep.add(kind, err)
}

func (h *harness) count(kind string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rep.count(kind)
}

func (h *harness) has(ip string) bool {
	v, _ := h.src.Current()
	return slices.ContainsFunc(v.EndpointList(), func(e cluster.RemoteEndpoint) bool { return e.IP.String() == ip })
}

func (h *harness) hasHost(name string) bool {
	v, _ := h.src.Current()
	_, ok := v.Host(name)
	return ok
}

func startSource(t *testing.T, c *clientv3.Client, hook func(rev int64)) *harness {
	t.Helper()
	return startSourceWith(t, c, hook, false)
}

// forModes runs a test of the Source unscoped (the whole prefix) and
// scoped with every network of base() of interest: both must behave alike.
func forModes(t *testing.T, test func(t *testing.T, scoped bool)) {
	t.Run("all", func(t *testing.T) { test(t, false) })
	t.Run("scoped", func(t *testing.T) { test(t, true) })
}

// startSourceWith is startSource, scoped (Config.Scoped) with blue and red
// of interest when scoped is set: it waits until both are loaded.
func startSourceWith(t *testing.T, c *clientv3.Client, hook func(rev int64), scoped bool) *harness {
	t.Helper()
	h := &harness{}
	src, err := New(Config{Client: c, Prefix: tp, ProbeInterval: 100 * time.Millisecond, ProbeTimeout: 300 * time.Millisecond,
		Scoped: scoped, PageSize: 3, Logger: testLogger(), OnReject: h.reject})
	if err != nil {
		t.Fatal(err)
	}
	src.beforeWatch = hook
	h.src = src
	if scoped {
		src.SetInterest([]string{"blue", "red"})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = src.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, 10*time.Second, func() bool {
		v, ok := src.Current()
		return ok && v.Scoped == scoped && (!scoped || slices.Equal(v.Loaded, []string{"blue", "red"}))
	}, "no first view")
	return h
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

func TestSourceListThenWatchMissesNothing(t *testing.T) {
	forModes(t, testSourceListThenWatchMissesNothing)
}

func testSourceListThenWatchMissesNothing(t *testing.T, scoped bool) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	seed(t, c)
	var once sync.Once
	h := startSourceWith(t, c, func(int64) {
		// Between the list and the watch: must be seen all the same.
		once.Do(func() {
			put(t, c, tk.endpoint("blue", netip.MustParseAddr("10.100.0.2"), "hb"), `{"version":1,"mac":"02:00:00:00:00:02"}`)
			remove(t, c, tk.endpoint("blue", netip.MustParseAddr("10.100.0.1"), "ha"))
		})
	}, scoped)
	eventually(t, 5*time.Second, func() bool { return h.has("10.100.0.2") && !h.has("10.100.0.1") },
		"changes made between list and watch were missed")
	put(t, c, tk.endpoint("red", netip.MustParseAddr("10.200.0.9"), "hc"), `{"version":1,"mac":"02:00:00:00:00:09"}`)
	eventually(t, 5*time.Second, func() bool { return h.has("10.200.0.9") }, "a watched change was missed")
	v, _ := h.src.Current()
	if err := cluster.Validate(v); err != nil {
		t.Fatal(err)
	}
	if s := h.src.State(); !s.Connected || s.Resyncs != 0 || s.Revision == 0 {
		t.Errorf("state %+v", s)
	}
}

func TestSourceResyncsAfterCompaction(t *testing.T) { forModes(t, testSourceResyncsAfterCompaction) }

func testSourceResyncsAfterCompaction(t *testing.T, scoped bool) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	seed(t, c)
	var once sync.Once
	h := startSourceWith(t, c, func(int64) {
		// The watch will start from a revision etcd no longer has.
		once.Do(func() {
			put(t, c, tk.endpoint("blue", netip.MustParseAddr("10.100.0.3"), "hb"), `{"version":1,"mac":"02:00:00:00:00:03"}`)
			remove(t, c, tk.endpoint("blue", netip.MustParseAddr("10.100.0.1"), "ha"))
			srv.Compact(t, c)
		})
	}, scoped)
	eventually(t, 10*time.Second, func() bool { return h.has("10.100.0.3") && !h.has("10.100.0.1") },
		"changes hidden by a compaction were not picked up")
	// Unscoped: the prefix is listed again. Scoped: the base's watch and
	// blue's (the hook ran before blue's watch, red was listed after the
	// compaction) each list their range again.
	want := State{Resyncs: 1}
	if scoped {
		want = State{BaseResyncs: 1, ClaimResyncs: 1}
	}
	eventually(t, 10*time.Second, func() bool {
		s := h.src.State()
		return s.Resyncs == want.Resyncs && s.BaseResyncs == want.BaseResyncs && s.ClaimResyncs == want.ClaimResyncs
	}, "resyncs %+v, want %+v", h.src.State(), want)
	col := NewCollector(h.src, nil)
	for _, r := range []struct {
		label string
		want  uint64
	}{{"all", want.Resyncs}, {"base", want.BaseResyncs}, {"claims", want.ClaimResyncs}} {
		if got := metricValue(t, col, "ofctl_agent_etcd_resyncs_total", "range", r.label); got != float64(r.want) {
			t.Errorf("ofctl_agent_etcd_resyncs_total{range=%q} %v, want %d", r.label, got, r.want)
		}
	}
}

func TestSourceLeaseExpiryRemovesHost(t *testing.T) { forModes(t, testSourceLeaseExpiryRemovesHost) }

func testSourceLeaseExpiryRemovesHost(t *testing.T, scoped bool) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	seed(t, c)
	h := startSourceWith(t, c, nil, scoped)
	pub, stop := startPublisher(t, c, "hd", "192.0.2.4", 2*time.Second)
	pub.PublishEndpoints([]endpoint.Endpoint{{Network: "red", IP: netip.MustParseAddr("10.200.0.4"), MAC: net.HardwareAddr{2, 0, 0, 0, 0, 4}}})
	eventually(t, 5*time.Second, func() bool { return h.hasHost("hd") && h.has("10.200.0.4") }, "published host not seen")
	stop() // the agent dies: nobody keeps the lease alive
	start := time.Now()
	eventually(t, 10*time.Second, func() bool { return !h.hasHost("hd") && !h.has("10.200.0.4") },
		"a dead host's records outlived its lease")
	if took := time.Since(start); took < time.Second {
		t.Errorf("records went after %v, before the 2s TTL", took)
	}
}

func TestSourceKeepsViewWhileEtcdIsDown(t *testing.T) {
	forModes(t, testSourceKeepsViewWhileEtcdIsDown)
}

func testSourceKeepsViewWhileEtcdIsDown(t *testing.T, scoped bool) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	seed(t, c)
	h := startSourceWith(t, c, nil, scoped)
	before, _ := h.src.Current()
	srv.Stop()
	eventually(t, 10*time.Second, func() bool { return !h.src.State().Connected }, "etcd down not noticed")
	if v, _ := h.src.Current(); !v.Equal(before) {
		t.Fatal("the view changed while etcd was down")
	}
	select {
	case v := <-h.src.Updates():
		if !v.Equal(before) {
			t.Fatal("a different view was published while etcd was down")
		}
	default:
	}
	srv.Start() // same data directory and ports
	eventually(t, 15*time.Second, func() bool { return h.src.State().Connected }, "etcd back not noticed")
	put(t, c, tk.endpoint("blue", netip.MustParseAddr("10.100.0.7"), "hc"), `{"version":1,"mac":"02:00:00:00:00:07"}`)
	eventually(t, 10*time.Second, func() bool { return h.has("10.100.0.7") }, "changes after etcd returned not seen")
	if !h.has("10.100.0.1") {
		t.Error("an endpoint stored before the restart is gone")
	}
}

func TestSourceCountsBadRecords(t *testing.T) { forModes(t, testSourceCountsBadRecords) }

func testSourceCountsBadRecords(t *testing.T, scoped bool) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	seed(t, c)
	put(t, c, tp+"/hosts/broken/record", "not json")
	h := startSourceWith(t, c, nil, scoped)
	eventually(t, 5*time.Second, func() bool { return h.count(KindRecord) == 1 }, "a bad listed record was not reported")
	put(t, c, tk.endpoint("blue", netip.MustParseAddr("10.100.0.1"), "hb"), `{"version":1,"mac":"ff:ff:ff:ff:ff:ff"}`)
	put(t, c, tk.endpoint("blue", netip.MustParseAddr("10.100.0.1"), "hc"), `{"version":1,"mac":"02:00:00:00:00:0c"}`)
	eventually(t, 5*time.Second, func() bool { return h.count(KindRecord) == 2 && h.count(KindConflict) == 1 },
		"a bad watched record or a conflict was not reported: %v", h)
	if !h.has("10.100.0.1") || !h.src.State().Connected {
		t.Error("bad records disturbed the source")
	}
	v, _ := h.src.Current()
	if e, _ := v.LookupEndpoint("blue", netip.MustParseAddr("10.100.0.1")); e.Host != "ha" {
		t.Errorf("10.100.0.1 on %s, want ha (the oldest claim)", e.Host)
	}
}

// TestSourceIgnoresOldLayout: records in the layout of earlier versions
// (hosts/<host>, endpoints/<network>/<ip>/<host>), which anyone could
// write in any host's name, are not used, and reported once per host.
func TestSourceIgnoresOldLayout(t *testing.T) { forModes(t, testSourceIgnoresOldLayout) }

func testSourceIgnoresOldLayout(t *testing.T, scoped bool) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	seed(t, c)
	put(t, c, tp+"/hosts/hz", `{"version":1,"tunnel_ip":"192.0.2.26"}`)
	put(t, c, tp+"/endpoints/blue/10.100.0.26/hz", `{"version":1,"mac":"02:00:00:00:00:26"}`)
	h := startSourceWith(t, c, nil, scoped)
	put(t, c, tp+"/endpoints/blue/10.100.0.27/hz", `{"version":1,"mac":"02:00:00:00:00:27"}`)
	put(t, c, tp+"/endpoints/blue/10.100.0.28/hy", `{"version":1,"mac":"02:00:00:00:00:28"}`)
	eventually(t, 5*time.Second, func() bool { return h.count(KindOldLayout) == 2 && h.src.State().OldLayout == 4 },
		"old layout not reported once per host: %v %+v", h, h.src.State())
	v, _ := h.src.Current()
	if _, ok := v.Host("hz"); ok || h.has("10.100.0.26") || h.has("10.100.0.27") || h.has("10.100.0.28") {
		t.Errorf("old-layout records used: %+v", v)
	}
	if !h.has("10.100.0.1") || h.count(KindRecord) != 0 {
		t.Errorf("the new layout disturbed: %v", h)
	}
}

func startPublisher(t *testing.T, c *clientv3.Client, host, ip string, ttl time.Duration) (*Publisher, func()) {
	t.Helper()
	return startPublisherWith(t, c, host, ip, ttl, nil)
}

// startPublisherWith is startPublisher with hook run before Run.
func startPublisherWith(t *testing.T, c *clientv3.Client, host, ip string, ttl time.Duration, hook func(*Publisher)) (*Publisher, func()) {
	t.Helper()
	pub, err := NewPublisher(PublisherConfig{Client: c, Prefix: tp, Host: host, TunnelIP: netip.MustParseAddr(ip), TTL: ttl, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if hook != nil {
		hook(pub)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = pub.Run(ctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return pub, stop
}

func TestNewValidates(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	if _, err := New(Config{Client: c, Prefix: "nope"}); err == nil {
		t.Error("a prefix without a leading / was accepted")
	}
	if _, err := NewPublisher(PublisherConfig{Client: c, Host: "h"}); err == nil {
		t.Error("a publisher without a tunnel IP was accepted")
	}
	if _, err := NewPublisher(PublisherConfig{Client: c, Host: "-bad", TunnelIP: netip.MustParseAddr("192.0.2.1")}); err == nil {
		t.Error("a bad host name was accepted")
	}
	if _, err := NewClient(ClientConfig{Endpoints: []string{srv.Endpoint()}, CertFile: "x"}); err == nil {
		t.Error("a cert without a key was accepted")
	}
}

// TestListOneReadOrPaged: the list gives the same view in one range read
// (the default) as page by page, records of every kind and a bad one
// included.
func TestListOneReadOrPaged(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	seed(t, c)
	for i := range 20 {
		ip := netip.AddrFrom4([4]byte{10, 100, 1, byte(i + 1)})
		put(t, c, tk.endpoint("blue", ip, "hb"), string(EncodeNamedEndpoint(net.HardwareAddr{2, 0, 0, 1, 0, byte(i + 1)}, fmt.Sprintf("n%d", i%3))))
	}
	put(t, c, tk.endpoint("blue", netip.MustParseAddr("10.100.2.1"), "hb"), `{"version":1,"mac":"01:00:00:00:00:01"}`)
	ctx := context.Background()
	var views []cluster.View
	for _, page := range []int64{0, 1, 7} {
		var rejects int
		s, err := New(Config{Client: c, Prefix: tp, PageSize: page, OnReject: func(string, error) { rejects++ }})
		if err != nil {
			t.Fatal(err)
		}
		x, _, err := s.list(ctx, nil)
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		if rejects != 1 || x.endpoints.Len() != 21 {
			t.Errorf("page %d: %d rejects (want 1), %d endpoints (want 21)", page, rejects, x.endpoints.Len())
		}
		v, _ := s.Current()
		views = append(views, v)
	}
	for i, v := range views[1:] {
		if !v.Equal(views[0]) {
			t.Errorf("paged list %d differs from the one range read:\n%v\n%v", i+1, v.EndpointList(), views[0].EndpointList())
		}
	}
}
