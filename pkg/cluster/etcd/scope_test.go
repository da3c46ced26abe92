package etcd

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster/etcd/etcdtest"
)

// TestScopedSourceFollowsInterest: a scoped Source loads the claims of
// the networks of interest alone, says so in the view (Loaded), follows
// them while they are of interest and drops them (from the view and the
// index) when they no longer are; hosts, networks and claims of the host
// layout are known whatever the interest.
func TestScopedSourceFollowsInterest(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	for _, o := range base() {
		put(t, c, o.key, o.value)
	}
	ip := netip.MustParseAddr
	put(t, c, tk.endpoint("blue", ip("10.100.0.1"), "ha"), `{"version":1,"mac":"02:00:00:00:00:01"}`)
	put(t, c, tk.endpoint("red", ip("10.200.0.2"), "hb"), `{"version":1,"mac":"02:00:00:00:00:02"}`)
	put(t, c, tk.hostEndpoint("red", ip("10.200.0.3"), "hc"), `{"version":1,"mac":"02:00:00:00:00:03"}`) // an old agent's
	h := &harness{}
	src, err := New(Config{Client: c, Prefix: tp, Scoped: true, Logger: testLogger(), ProbeInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h.src = src
	runSource(t, src)
	// loaded waits for a view with exactly these networks loaded and
	// these endpoints, and checks the index's claim count.
	loaded := func(what string, nets []string, ips []string, claims int) {
		t.Helper()
		eventually(t, 10*time.Second, func() bool {
			v, ok := src.Current()
			if !ok || !v.Scoped || !slices.Equal(v.Loaded, nets) || v.EndpointCount() != len(ips) || len(v.Hosts) != 3 || len(v.Networks) != 2 {
				return false
			}
			for _, a := range ips {
				if !h.has(a) {
					return false
				}
			}
			return src.State().Claims == claims && src.State().Loaded == len(nets)
		}, "%s: view %+v, state %+v", what, func() any { v, _ := src.Current(); return eps(v) }(), src.State())
	}
	loaded("no interest", nil, []string{"10.200.0.3"}, 1)
	src.SetInterest([]string{"blue"})
	loaded("blue", []string{"blue"}, []string{"10.100.0.1", "10.200.0.3"}, 2)
	put(t, c, tk.endpoint("blue", ip("10.100.0.4"), "hb"), `{"version":1,"mac":"02:00:00:00:00:04"}`)
	put(t, c, tk.endpoint("red", ip("10.200.0.5"), "ha"), `{"version":1,"mac":"02:00:00:00:00:05"}`)
	loaded("blue, watched", []string{"blue"}, []string{"10.100.0.1", "10.100.0.4", "10.200.0.3"}, 3)
	src.SetInterest([]string{"red"})
	loaded("red instead", []string{"red"}, []string{"10.200.0.2", "10.200.0.3", "10.200.0.5"}, 3)
	remove(t, c, tk.endpoint("red", ip("10.200.0.2"), "hb"))
	loaded("red, watched", []string{"red"}, []string{"10.200.0.3", "10.200.0.5"}, 2)
	src.SetInterest([]string{"blue", "green", "red"}) // green: no network, no claims; loaded all the same
	loaded("all", []string{"blue", "green", "red"}, []string{"10.100.0.1", "10.100.0.4", "10.200.0.3", "10.200.0.5"}, 4)
	src.SetInterest(nil)
	loaded("none again", nil, []string{"10.200.0.3"}, 1)
	if s := src.State(); !s.Connected || s.Resyncs != 0 {
		t.Errorf("state %+v", s)
	}
}

// TestScopedSourceRevisionsIncrease: every view a scoped Source publishes
// has a higher revision than the one before, also when a load changes
// the view at a revision already seen, and its delta starts from it.
func TestScopedSourceRevisionsIncrease(t *testing.T) {
	srv := etcdtest.Start(t)
	c := srv.Client(t)
	seed(t, c)
	src, err := New(Config{Client: c, Prefix: tp, Scoped: true, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	runSource(t, src)
	first := <-src.Updates()
	if first.Delta != nil || first.EndpointCount() != 0 {
		t.Fatalf("first view: delta %+v, %d endpoints", first.Delta, first.EndpointCount())
	}
	src.SetInterest([]string{"blue"})
	var v = first
	eventually(t, 10*time.Second, func() bool {
		select {
		case v = <-src.Updates():
		default:
		}
		return v.IsLoaded("blue")
	}, "blue not loaded")
	if v.Revision <= first.Revision || v.Delta == nil || v.Delta.From != first.Revision || len(v.Delta.EndpointsAdded) != 1 {
		t.Errorf("view after the load: revision %d (first %d), delta %+v", v.Revision, first.Revision, v.Delta)
	}
}

// runSource runs src until the test ends.
func runSource(t *testing.T, src *Source) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = src.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestScopedSourceRelistsOneRange: a scoped watch that falls behind a
// compaction lists its own range again, alone: one network's claims, or
// the hosts' and networks' records. What was added, changed and deleted
// in that range meanwhile comes out right (the view and the index equal a
// fresh Source's), the other ranges are not read again, the view after
// has a higher revision and its delta holds the changes alone (a claim
// deleted and written again the same is no change), and the resync is
// counted for its range.
func TestScopedSourceRelistsOneRange(t *testing.T) {
	ip := netip.MustParseAddr
	ep := func(i int) string { return fmt.Sprintf(`{"version":1,"mac":"02:00:00:00:01:%02x"}`, i) }
	tests := []struct {
		name   string
		behind string // the range held back: a network, "" for the base
		// change changes the range held back (and may write claims the
		// live watches see but the view cannot show yet).
		change func(t *testing.T, c *clientv3.Client)
		// The delta of the view after the catch-up.
		added, removed, changed []string // endpoints: "network ip host"
		hosts                   []string // "added|removed|changed host"
		base, claims            uint64   // resyncs counted
	}{
		{name: "claims", behind: "blue", change: func(t *testing.T, c *clientv3.Client) {
			put(t, c, tk.endpoint("blue", ip("10.100.0.4"), "hb"), ep(4))                                     // added
			put(t, c, tk.endpoint("blue", ip("10.100.0.2"), "hb"), ep(12))                                    // changed
			remove(t, c, tk.endpoint("blue", ip("10.100.0.3"), "hc"))                                         // deleted
			remove(t, c, tk.endpoint("blue", ip("10.100.0.1"), "ha"))                                         // deleted and written
			put(t, c, tk.endpoint("blue", ip("10.100.0.1"), "ha"), `{"version":1,"mac":"02:00:00:00:00:01"}`) // again the same
		},
			added: []string{"blue 10.100.0.4 hb"}, removed: []string{"blue 10.100.0.3 hc"}, changed: []string{"blue 10.100.0.2 hb"},
			claims: 1},
		{name: "base", behind: "", change: func(t *testing.T, c *clientv3.Client) {
			put(t, c, tk.host("hd"), `{"version":1,"tunnel_ip":"192.0.2.4"}`)                // added
			put(t, c, tk.endpoint("red", ip("10.200.0.7"), "hd"), ep(7))                     // live, shown with hd
			put(t, c, tk.host("hb"), `{"version":1,"tunnel_ip":"192.0.2.12"}`)               // changed
			remove(t, c, tk.host("hc"))                                                      // deleted: its claims go
			put(t, c, tk.hostEndpoint("blue", ip("10.100.0.9"), "ha"), ep(9))                // an old agent's claim
			remove(t, c, tk.network("red"))                                                  // deleted and written
			put(t, c, tk.network("red"), `{"version":1,"vni":200,"subnet":"10.200.0.0/16"}`) // again the same
		},
			added:   []string{"blue 10.100.0.9 ha", "red 10.200.0.7 hd"},
			removed: []string{"blue 10.100.0.3 hc", "red 10.200.0.3 hc"},
			hosts:   []string{"added hd", "removed hc", "changed hb"},
			base:    1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := etcdtest.Start(t)
			c := srv.Client(t)
			seed(t, c) // blue 10.100.0.1 ha
			put(t, c, tk.endpoint("blue", ip("10.100.0.2"), "hb"), ep(2))
			put(t, c, tk.endpoint("blue", ip("10.100.0.3"), "hc"), ep(3))
			put(t, c, tk.endpoint("red", ip("10.200.0.1"), "ha"), ep(0x11))
			put(t, c, tk.endpoint("red", ip("10.200.0.2"), "hb"), ep(0x12))
			put(t, c, tk.endpoint("red", ip("10.200.0.3"), "hc"), ep(0x13))

			sc := srv.Client(t)
			reads := &countingKV{KV: sc.KV, gets: map[string]int{}}
			sc.KV = reads
			src, err := New(Config{Client: sc, Prefix: tp, Scoped: true, Logger: testLogger(), ProbeInterval: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			release := make(chan struct{})
			var hold, unhold sync.Once
			t.Cleanup(func() { unhold.Do(func() { close(release) }) })
			src.beforeFollow = func(network string, _ int64) {
				if network == tt.behind {
					hold.Do(func() { <-release }) // its first watch, from the listing's revision
				}
			}
			h := &harness{src: src}
			src.SetInterest([]string{"blue", "red"})
			runSource(t, src)
			both := func(s *Source) func() bool {
				return func() bool { v, ok := s.Current(); return ok && slices.Equal(v.Loaded, []string{"blue", "red"}) }
			}
			eventually(t, 10*time.Second, both(src), "blue and red not loaded")

			tt.change(t, c)
			// Live watches go on meanwhile: red's claims change.
			put(t, c, tk.endpoint("red", ip("10.200.0.4"), "ha"), ep(0x14))
			remove(t, c, tk.endpoint("red", ip("10.200.0.2"), "hb"))
			eventually(t, 10*time.Second, func() bool { return h.has("10.200.0.4") && !h.has("10.200.0.2") },
				"red's watch did not go on while the %q range was held back", tt.behind)
			srv.Compact(t, c)
			pre, _ := src.Current()
			unhold.Do(func() { close(release) })

			fresh, err := New(Config{Client: c, Prefix: tp, Scoped: true, Logger: testLogger()})
			if err != nil {
				t.Fatal(err)
			}
			fresh.SetInterest([]string{"blue", "red"})
			runSource(t, fresh)
			eventually(t, 10*time.Second, both(fresh), "the fresh source did not load blue and red")
			want, _ := fresh.Current()
			eventually(t, 20*time.Second, func() bool {
				v, _ := src.Current()
				return v.Equal(want) && slices.Equal(v.Loaded, want.Loaded)
			}, "the view after the catch-up differs from a fresh listing's")
			s, fs := src.State(), fresh.State()
			if s.Networks != fs.Networks || s.Hosts != fs.Hosts || s.Claims != fs.Claims || s.OldLayout != fs.OldLayout {
				t.Errorf("index counts %+v, a fresh source's %+v", s, fs)
			}
			if s.Resyncs != 0 || s.BaseResyncs != tt.base || s.ClaimResyncs != tt.claims || !s.Connected {
				t.Errorf("state %+v: want %d base and %d claims resyncs, none of the prefix", s, tt.base, tt.claims)
			}
			if got := metricValue(t, NewCollector(src, nil), "ofctl_agent_etcd_resyncs_total", "range", "claims"); got != float64(tt.claims) {
				t.Errorf("ofctl_agent_etcd_resyncs_total{range=\"claims\"} %v, want %d", got, tt.claims)
			}

			// One range read of each range, two of the one held back.
			for _, r := range []struct{ network, key string }{
				{"", tk.baseSpan().key}, {"blue", tk.claims("blue")}, {"red", tk.claims("red")},
			} {
				want := 1
				if r.network == tt.behind {
					want = 2
				}
				if got := reads.count(r.key); got != want {
					t.Errorf("%s read %d times, want %d", r.key, got, want)
				}
			}

			// The catch-up published one view: after pre, with a delta
			// of what changed alone.
			v, _ := src.Current()
			if v.Revision <= pre.Revision || v.Delta == nil || v.Delta.From != pre.Revision {
				t.Fatalf("view after the catch-up: revision %d, delta %+v; before %d", v.Revision, v.Delta, pre.Revision)
			}
			d := v.Delta
			var hosts []string
			for _, x := range d.HostsAdded {
				hosts = append(hosts, "added "+x.Name)
			}
			for _, x := range d.HostsRemoved {
				hosts = append(hosts, "removed "+x.Name)
			}
			for _, x := range d.HostsChanged {
				hosts = append(hosts, "changed "+x.New.Name)
			}
			var changed []cluster.RemoteEndpoint
			for _, x := range d.EndpointsChanged {
				changed = append(changed, x.New)
			}
			for _, f := range []struct {
				what      string
				got, want []string
			}{
				{"endpoints added", epNames(d.EndpointsAdded), tt.added},
				{"endpoints removed", epNames(d.EndpointsRemoved), tt.removed},
				{"endpoints changed", epNames(changed), tt.changed},
				{"hosts", hosts, tt.hosts},
			} {
				if !slices.Equal(f.got, f.want) {
					t.Errorf("%s: %q, want %q", f.what, f.got, f.want)
				}
			}
			if len(d.NetworksAdded)+len(d.NetworksRemoved)+len(d.NetworksChanged) != 0 {
				t.Errorf("networks changed: %+v", d)
			}
		})
	}
}

// epNames formats endpoints as "network ip host", sorted.
func epNames(es []cluster.RemoteEndpoint) []string {
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%s %s %s", e.Network, e.IP, e.Host))
	}
	slices.Sort(out)
	return out
}

// countingKV counts a client's range reads by their first key.
type countingKV struct {
	clientv3.KV
	mu   sync.Mutex
	gets map[string]int
}

func (k *countingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	k.mu.Lock()
	k.gets[key]++
	k.mu.Unlock()
	return k.KV.Get(ctx, key, opts...)
}

func (k *countingKV) count(key string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.gets[key]
}
