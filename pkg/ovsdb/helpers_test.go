package ovsdb

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testLogger shows warnings and errors (repairs, reconnects) in test output.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// startClient runs a Client against the node's ovsdb-server. The returned
// stop closes it (also run in t.Cleanup): tests that check for leaks call it.
func startClient(t *testing.T, n *testbed.Node, mod func(*Config)) (*Client, func()) {
	t.Helper()
	cfg := Config{
		Endpoint:      n.DBAddr(),
		NodeName:      n.Name,
		Bridge:        BridgeConfig{DatapathType: "netdev"},
		MinBackoff:    50 * time.Millisecond,
		MaxBackoff:    500 * time.Millisecond,
		ProbeInterval: time.Second,
		Logger:        testLogger(t),
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			c.Close()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return c, stop
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// recorder collects a subscription's events.
type recorder struct {
	mu      sync.Mutex
	evs     []InterfaceEvent
	done    chan struct{}
	markers int // ports made by settle
}

func record(s *Subscription) *recorder {
	r := &recorder{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for b := range s.C() {
			r.mu.Lock()
			r.evs = append(r.evs, b...)
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *recorder) events() []InterfaceEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]InterfaceEvent(nil), r.evs...)
}

// wait returns the first event (from index from on) that satisfies match.
func (r *recorder) wait(t *testing.T, from int, what string, match func(InterfaceEvent) bool) (InterfaceEvent, int) {
	t.Helper()
	var got InterfaceEvent
	idx := -1
	testbed.Eventually(t, 10*time.Second, func() bool {
		evs := r.events()
		for i := from; i < len(evs); i++ {
			if match(evs[i]) {
				got, idx = evs[i], i
				return true
			}
		}
		return false
	}, "no event %s; events: %+v", what, r)
	return got, idx
}

func (r *recorder) String() string {
	var b strings.Builder
	for _, ev := range r.events() {
		b.WriteString("\n  " + ev.Kind.String() + " " + ev.Interface.Name + " ofport=" +
			strconv.Itoa(ev.Interface.OFPort))
	}
	return b.String()
}

// settle adds and deletes a marker port on br-int with ovs-vsctl and waits
// until the client has reported both. OVSDB updates reach the client in
// order and it handles them one sync at a time, each publishing its events
// before it repairs; so every update made before the marker, and any
// repair it caused, has then been handled. A test asserting that nothing
// happened settles first instead of sleeping.
func (r *recorder) settle(t *testing.T, n *testbed.Node) {
	t.Helper()
	r.mu.Lock()
	r.markers++
	name := "marker" + strconv.Itoa(r.markers)
	r.mu.Unlock()
	from := len(r.events())
	n.Vsctl(t, "add-port", "br-int", name, "--", "set", "interface", name, "type=internal")
	_, at := r.wait(t, from, name+" added", named(Added, name))
	n.Vsctl(t, "del-port", "br-int", name)
	r.wait(t, at, name+" deleted", named(Deleted, name))
}

func named(kind EventKind, name string) func(InterfaceEvent) bool {
	return func(ev InterfaceEvent) bool { return ev.Kind == kind && ev.Interface.Name == name }
}

// vsctlGet reads one column with ovs-vsctl, quotes removed.
func vsctlGet(t *testing.T, n *testbed.Node, table, record, column string) string {
	t.Helper()
	return strings.Trim(strings.TrimSpace(n.Vsctl(t, "get", table, record, column)), `"`)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
