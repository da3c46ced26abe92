package agentapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/unixsock"
)

// fakeBackend holds one network with two free addresses.
type fakeBackend struct {
	ready bool
	held  map[netip.Addr]string // address -> owner
}

func (f *fakeBackend) Status() Status {
	if !f.ready {
		return Status{Reason: "pipeline not in OVS yet"}
	}
	return Status{Ready: true}
}

var blue = Network{Name: "blue", Subnet: netip.MustParsePrefix("10.100.0.0/16"),
	Gateway: netip.MustParseAddr("10.100.1.1"), MTU: 1458}

func (f *fakeBackend) Network(name string) (Network, error) {
	if name != blue.Name {
		return Network{}, fmt.Errorf("%w %q", ErrUnknownNetwork, name)
	}
	return blue, nil
}

func (f *fakeBackend) Allocate(_ context.Context, r AllocateRequest) (Allocation, error) {
	if _, err := f.Network(r.Network); err != nil {
		return Allocation{}, err
	}
	for a, o := range f.held {
		if o == r.Owner {
			return f.allocation(a), nil
		}
	}
	if r.IP.IsValid() {
		if _, taken := f.held[r.IP]; taken {
			return Allocation{}, fmt.Errorf("%w: %s is held", ErrAddressTaken, r.IP)
		}
		f.held[r.IP] = r.Owner
		return f.allocation(r.IP), nil
	}
	for _, s := range []string{"10.100.1.2", "10.100.1.3"} {
		if a := netip.MustParseAddr(s); f.held[a] == "" {
			f.held[a] = r.Owner
			return f.allocation(a), nil
		}
	}
	return Allocation{}, fmt.Errorf("%w in blue", ErrExhausted)
}

func (f *fakeBackend) allocation(a netip.Addr) Allocation {
	return Allocation{Network: "blue", Address: netip.PrefixFrom(a, 16), Gateway: blue.Gateway, MTU: blue.MTU,
		MAC: "0a:58:0a:64:01:02"}
}

func (f *fakeBackend) Release(_ context.Context, r ReleaseRequest) error {
	for a, o := range f.held {
		if o == r.Owner && (!r.IP.IsValid() || a == r.IP) {
			delete(f.held, a)
		}
	}
	return nil
}

func (f *fakeBackend) Allocations(_ context.Context, network, ownerPrefix string) ([]Allocated, error) {
	var l []Allocated
	for a, o := range f.held {
		if (network == "" || network == "blue") && strings.HasPrefix(o, ownerPrefix) {
			l = append(l, Allocated{Network: "blue", IP: a, Owner: o, Expires: time.Unix(1e9, 0).UTC()})
		}
	}
	slices.SortFunc(l, func(x, y Allocated) int { return x.IP.Compare(y.IP) })
	return l, nil
}

func serve(t *testing.T, b Backend, o HandlerOptions) (*Client, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.sock")
	l, err := unixsock.Listen(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: Handler(b, o), ReadHeaderTimeout: time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return NewClient(path), path
}

func TestClientServer(t *testing.T) {
	f := &fakeBackend{held: map[netip.Addr]string{}}
	var calls []string
	c, _ := serve(t, f, HandlerOptions{OnRequest: func(call string, code Code) { calls = append(calls, call+"/"+string(code)) }})
	ctx := context.Background()

	if s, err := c.Status(ctx); err != nil || s.Ready || s.Reason == "" {
		t.Fatalf("status before ready: %+v, %v", s, err)
	}
	f.ready = true
	if s, err := c.Status(ctx); err != nil || !s.Ready {
		t.Fatalf("status: %+v, %v", s, err)
	}
	if n, err := c.Network(ctx, "blue"); err != nil || n != blue {
		t.Fatalf("network: %+v, %v", n, err)
	}
	steps := []struct {
		name    string
		call    func() error
		wantErr error
	}{
		{"unknown network", func() error { _, err := c.Network(ctx, "red"); return err }, ErrUnknownNetwork},
		{"first", func() error {
			a, err := c.Allocate(ctx, AllocateRequest{Network: "blue", Owner: "cni:c1/eth0"})
			if err == nil && a.Address != netip.MustParsePrefix("10.100.1.2/16") {
				return fmt.Errorf("got %v", a.Address)
			}
			return err
		}, nil},
		{"same owner, same address", func() error {
			a, err := c.Allocate(ctx, AllocateRequest{Network: "blue", Owner: "cni:c1/eth0"})
			if err == nil && a.Address.Addr() != netip.MustParseAddr("10.100.1.2") {
				return fmt.Errorf("got %v", a.Address)
			}
			return err
		}, nil},
		{"wanted address taken", func() error {
			_, err := c.Allocate(ctx, AllocateRequest{Network: "blue", IP: netip.MustParseAddr("10.100.1.2"), Owner: "x"})
			return err
		}, ErrAddressTaken},
		{"second", func() error { _, err := c.Allocate(ctx, AllocateRequest{Network: "blue", Owner: "b"}); return err }, nil},
		{"exhausted", func() error { _, err := c.Allocate(ctx, AllocateRequest{Network: "blue", Owner: "c"}); return err }, ErrExhausted},
		{"release", func() error {
			return c.Release(ctx, ReleaseRequest{Network: "blue", IP: netip.MustParseAddr("10.100.1.3"), Owner: "b"})
		}, nil},
		{"free again", func() error { _, err := c.Allocate(ctx, AllocateRequest{Network: "blue", Owner: "c"}); return err }, nil},
		{"list", wantList(ctx, c, "", "", "10.100.1.2=cni:c1/eth0 10.100.1.3=c"), nil},
		{"list one network and kind of owner", wantList(ctx, c, "blue", "cni:", "10.100.1.2=cni:c1/eth0"), nil},
		{"list another network", wantList(ctx, c, "red", "", ""), nil},
		{"release by owner alone", func() error { return c.Release(ctx, ReleaseRequest{Network: "blue", Owner: "cni:c1/eth0"}) }, nil},
		{"list after", wantList(ctx, c, "", "", "10.100.1.3=c"), nil},
		{"no owner", func() error { _, err := c.Allocate(ctx, AllocateRequest{Network: "blue"}); return err }, ErrInvalid},
		{"IPv6", func() error {
			_, err := c.Allocate(ctx, AllocateRequest{Network: "blue", IP: netip.MustParseAddr("fd00::1"), Owner: "x"})
			return err
		}, ErrInvalid},
	}
	for _, s := range steps {
		err := s.call()
		if s.wantErr == nil && err != nil || s.wantErr != nil && !errors.Is(err, s.wantErr) {
			t.Fatalf("%s: err %v, want %v", s.name, err, s.wantErr)
		}
	}
	want := "status/ status/ network/ network/unknown-network allocate/ allocate/ allocate/address-taken allocate/ " +
		"allocate/exhausted release/ allocate/ list/ list/ list/ release/ list/ allocate/invalid allocate/invalid"
	if got := strings.Join(calls, " "); got != want {
		t.Errorf("OnRequest saw\n%s\nwant\n%s", got, want)
	}
}

// wantList is a step listing the allocations, "ip=owner ..." expected.
func wantList(ctx context.Context, c *Client, network, prefix, want string) func() error {
	return func() error {
		l, err := c.Allocations(ctx, network, prefix)
		if err != nil {
			return err
		}
		var got []string
		for _, a := range l {
			if a.Network != "blue" || a.Expires != time.Unix(1e9, 0).UTC() {
				return fmt.Errorf("allocation %+v: network or expiry lost on the way", a)
			}
			got = append(got, a.IP.String()+"="+a.Owner)
		}
		if strings.Join(got, " ") != want {
			return fmt.Errorf("list %q %q: %q, want %q", network, prefix, got, want)
		}
		return nil
	}
}

func TestMalformedRequests(t *testing.T) {
	var invalid []error
	_, path := serve(t, &fakeBackend{held: map[netip.Addr]string{}}, HandlerOptions{OnInvalid: func(err error) { invalid = append(invalid, err) }})
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
	tests := []struct{ method, path, body, want string }{
		{"POST", "/v1/addresses", `{"network":`, "body"},
		{"POST", "/v1/addresses", `{"network":"blue","owner":"x","extra":1}`, "unknown field"},
		{"POST", "/v1/addresses", `{"network":"blue","owner":"x"} {}`, "after the JSON"},
		{"POST", "/v1/addresses", `{"network":"blue","owner":"x","ip":"10.1"}`, "body"},
		{"POST", "/v1/addresses", strings.Repeat(" ", maxBody+10) + "{}", "larger than"},
		{"DELETE", "/v1/addresses", `{"network":"blue","ip":"10.100.1.2"}`, "an owner"},
		{"DELETE", "/v1/addresses", `{"network":"blue","owner":"x","ip":"fd00::1"}`, "IPv4 address"},
		{"GET", "/v1/addresses?owner=x", ``, "list takes network and owner-prefix"},
		{"GET", "/v1/addresses?network=a&network=b", ``, "at most once"},
		{"PUT", "/v1/status", ``, "no such call"},
	}
	for i, tc := range tests {
		req, _ := http.NewRequest(tc.method, "http://agent"+tc.path, strings.NewReader(tc.body))
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body := string(data)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `"code":"invalid"`) ||
			!strings.Contains(body, tc.want) {
			t.Errorf("%s %s %.40q: %s %s, want 400 invalid mentioning %q", tc.method, tc.path, tc.body, resp.Status, body, tc.want)
		}
		if len(invalid) != i+1 {
			t.Errorf("%s %s: OnInvalid called %d times in all, want %d", tc.method, tc.path, len(invalid), i+1)
		}
	}
}

func TestUnreachable(t *testing.T) {
	c := NewClient(filepath.Join(t.TempDir(), "none.sock"))
	if _, err := c.Status(context.Background()); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("no agent: %v, want ErrUnreachable", err)
	}
}
