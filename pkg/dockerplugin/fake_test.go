package dockerplugin

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
)

// testView has two networks sharing a subnet (allowed: VNIs isolate them)
// and one of its own.
func testView() cluster.View {
	v := cluster.View{Networks: []cluster.Network{
		{Name: "blue", VNI: 100, Subnet: netip.MustParsePrefix("10.1.0.0/16")},
		{Name: "green", VNI: 300, Subnet: netip.MustParsePrefix("10.3.0.0/24")},
		{Name: "red", VNI: 200, Subnet: netip.MustParsePrefix("10.3.0.0/24")},
	}}
	v.Normalize()
	return v
}

// fakeAddresses hands out addresses from .10 of each network upwards.
type fakeAddresses struct {
	mu       sync.Mutex
	gateways map[string]netip.Addr
	held     map[netip.Addr]string
	limit    int // addresses per network; 0: unlimited
	log      []string
}

func newFakeAddresses() *fakeAddresses {
	return &fakeAddresses{
		gateways: map[string]netip.Addr{"blue": netip.MustParseAddr("10.1.0.1"), "green": netip.MustParseAddr("10.3.0.1"), "red": netip.MustParseAddr("10.3.0.1")},
		held:     map[netip.Addr]string{},
	}
}

func (f *fakeAddresses) Gateway(network string) (netip.Addr, error) {
	gw, ok := f.gateways[network]
	if !ok {
		return gw, fmt.Errorf("no gateway in %s", network)
	}
	return gw, nil
}

func (f *fakeAddresses) Reserve(network string, addr netip.Addr) (netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if addr.IsValid() {
		if _, taken := f.held[addr]; taken {
			return addr, fmt.Errorf("%s: %w (held)", addr, ErrAddressUnavailable)
		}
	} else {
		a := f.gateways[network]
		for i := 0; ; i++ {
			if f.limit > 0 && i >= f.limit {
				return addr, fmt.Errorf("range: %w", ErrExhausted)
			}
			a = a.Next()
			if _, taken := f.held[a]; !taken {
				break
			}
		}
		addr = a
	}
	f.held[addr] = network
	f.log = append(f.log, "reserve "+network+" "+addr.String())
	return addr, nil
}

func (f *fakeAddresses) Own(network string, addr netip.Addr, endpointID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, "own "+network+" "+addr.String()+" "+endpointID)
}

func (f *fakeAddresses) Release(network string, addr netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.held, addr)
	f.log = append(f.log, "release "+network+" "+addr.String())
	return nil
}

// callLog records what a fake backend was asked, in order.
type callLog struct {
	mu  sync.Mutex
	log []string
}

func (l *callLog) record(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.log = append(l.log, s)
}

func (l *callLog) calls() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.log, "; ")
}

// fakeEndpoints records calls; joinFn, if set, replaces Join.
type fakeEndpoints struct {
	callLog
	joinFn func(ctx context.Context, ep Endpoint) (Joined, error)
}

func (f *fakeEndpoints) Join(ctx context.Context, ep Endpoint) (Joined, error) {
	if f.joinFn != nil {
		return f.joinFn(ctx, ep)
	}
	f.record(fmt.Sprintf("join %s %s %s %s", ep.ID, ep.Network, ep.Address, ep.MAC))
	return Joined{Interface: "vd" + ep.ID[:min(6, len(ep.ID))]}, nil
}

func (f *fakeEndpoints) Leave(ctx context.Context, id string) error {
	f.record("leave " + id)
	return nil
}

func (f *fakeEndpoints) Publish(ctx context.Context, id string, ports []PortMapping) error {
	f.record(fmt.Sprintf("publish %s %v", id, ports))
	return nil
}

func (f *fakeEndpoints) Unpublish(ctx context.Context, id string) error {
	f.record("unpublish " + id)
	return nil
}

// bed is a server with fakes behind it.
type bed struct {
	srv      *Server
	addrs    *fakeAddresses
	eps      *fakeEndpoints
	invalids []string
}

func newBed(t *testing.T, stateFile string) *bed {
	t.Helper()
	b := &bed{addrs: newFakeAddresses(), eps: &fakeEndpoints{}}
	v := testView()
	srv, err := New(Config{
		StateFile: stateFile,
		View:      func() (cluster.View, bool) { return v, true },
		Addresses: b.addrs,
		Endpoints: b.eps,
		Logger:    slog.New(slog.DiscardHandler),
		OnInvalid: func(call string, err error) { b.invalids = append(b.invalids, call+": "+err.Error()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	b.srv = srv
	return b
}

// do sends one call the way dockerd does (POST, JSON body, no
// Content-Type) and returns the status and the body.
func (b *bed) do(call, body string) (int, string) {
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
	req.URL.Path = "/" + call // any bytes, as a client could send them
	rec := httptest.NewRecorder()
	b.srv.Handler().ServeHTTP(rec, req)
	return rec.Code, strings.TrimSpace(rec.Body.String())
}

// ok sends a call that must succeed and returns the body.
func (b *bed) ok(t *testing.T, call, body string) string {
	t.Helper()
	st, out := b.do(call, body)
	if st != http.StatusOK {
		t.Fatalf("%s %s: status %d: %s", call, body, st, out)
	}
	return out
}

// refused sends a call that must fail with status and an Err containing want.
func (b *bed) refused(t *testing.T, call, body string, status int, want string) {
	t.Helper()
	st, out := b.do(call, body)
	var e errorResponse
	if err := json.Unmarshal([]byte(out), &e); err != nil || st != status || !strings.HasPrefix(e.Err, "ofctl-agent: ") || !strings.Contains(e.Err, want) {
		t.Fatalf("%s %s: got %d %s, want %d with Err containing %q", call, body, st, out, status, want)
	}
}

func testBedView() (cluster.View, bool) { return testView(), true }
