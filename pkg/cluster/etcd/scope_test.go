package etcd

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

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
