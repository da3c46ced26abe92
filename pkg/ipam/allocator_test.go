package ipam

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
)

var (
	static = cluster.View{
		Networks: []cluster.Network{
			{Name: "blue", VNI: 100, Subnet: netip.MustParsePrefix("10.100.0.0/16")},
			{Name: "tiny", VNI: 300, Subnet: netip.MustParsePrefix("10.30.0.0/24")},
		},
		Hosts: []cluster.Host{
			{Name: "ha", Ranges: map[string]netip.Prefix{"blue": netip.MustParsePrefix("10.100.1.0/24"), "tiny": netip.MustParsePrefix("10.30.0.0/30")}},
			{Name: "hb", Ranges: map[string]netip.Prefix{"blue": netip.MustParsePrefix("10.100.2.0/24")}},
		},
	}
	// claims: the etcd backend's view: no ranges; hb claims two addresses,
	// ha (this host) one.
	claims = cluster.View{
		Networks: []cluster.Network{{Name: "green", VNI: 200, Subnet: netip.MustParsePrefix("10.200.0.0/29")}},
		Hosts:    []cluster.Host{{Name: "ha"}, {Name: "hb"}},
		Endpoints: []cluster.RemoteEndpoint{
			{Network: "green", IP: netip.MustParseAddr("10.200.0.1"), Host: "hb"},
			{Network: "green", IP: netip.MustParseAddr("10.200.0.3"), Host: "ha"},
			{Network: "green", IP: netip.MustParseAddr("10.200.0.4"), Host: "hb"},
		},
	}
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// env is one allocator under test, its clock and the view it was given.
type env struct {
	a   *Allocator
	clk *fakeClock
}

func newEnv(t *testing.T, node string, v *cluster.View, gateways map[string]netip.Addr) *env {
	t.Helper()
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	a, err := New(Config{Node: node, TTL: 2 * time.Minute, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	if v != nil {
		a.SetView(*v, gateways)
	}
	return &env{a, clk}
}

func port(network, ip string) map[string]string {
	return map[string]string{endpoint.KeyNetwork: network, endpoint.KeyIP: ip}
}

// step is one action on the allocator; those with an owner are Allocate
// calls whose result is checked.
type step struct {
	before  func(e *env) // runs first: ports, clock, releases
	network string
	owner   string
	want    string // wanted address ("": any)
	got     string // the address expected ("": none)
	err     error  // the error expected
	errText string // ... whose text holds this
}

func TestAllocate(t *testing.T) {
	gwBlue := map[string]netip.Addr{"blue": netip.MustParseAddr("10.100.1.1")}
	advance := func(d time.Duration) func(*env) { return func(e *env) { e.clk.t = e.clk.t.Add(d) } }
	cases := []struct {
		name     string
		node     string
		view     *cluster.View
		gateways map[string]netip.Addr
		steps    []step
	}{
		{"static: lowest free of the range, never its first address", "ha", &static, nil, []step{
			{network: "blue", owner: "a", got: "10.100.1.1"},
			{network: "blue", owner: "b", got: "10.100.1.2"},
		}},
		{"static: the gateway is skipped and refused", "ha", &static, gwBlue, []step{
			{network: "blue", owner: "a", got: "10.100.1.2"},
			{network: "blue", owner: "b", want: "10.100.1.1", err: agentapi.ErrAddressTaken, errText: "is this host's gateway"},
		}},
		{"static: ports hold their addresses", "ha", &static, nil, []step{
			{before: func(e *env) {
				e.a.SetPort("p1", port("blue", "10.100.1.1"))
				e.a.SetPort("p2", port("blue", "10.100.1.2"))
				e.a.SetPort("other", port("red", "10.100.1.3")) // another network's
				e.a.SetPort("tunnel", nil)
			}, network: "blue", owner: "a", got: "10.100.1.3"},
			{network: "blue", owner: "b", want: "10.100.1.2", err: agentapi.ErrAddressTaken, errText: "10.100.1.2 in network blue is held by port p2"},
			{before: func(e *env) { e.a.DeletePort("p1") }, network: "blue", owner: "b", got: "10.100.1.1"},
		}},
		{"static: a port's address changes", "ha", &static, nil, []step{
			{before: func(e *env) {
				e.a.SetPort("p1", port("blue", "10.100.1.1"))
				e.a.SetPort("p1", port("blue", "10.100.1.2"))
			}, network: "blue", owner: "a", got: "10.100.1.1"},
		}},
		{"same owner, same address; another owner, another", "ha", &static, nil, []step{
			{network: "blue", owner: "cni:c1/eth0", got: "10.100.1.1"},
			{network: "blue", owner: "cni:c1/eth0", got: "10.100.1.1"},
			{network: "blue", owner: "cni:c1/eth0", want: "10.100.1.1", got: "10.100.1.1"},
			{network: "blue", owner: "cni:c2/eth0", got: "10.100.1.2"},
			{network: "blue", owner: "x", want: "10.100.1.1", err: agentapi.ErrAddressTaken, errText: "is allocated to cni:c1/eth0"},
		}},
		{"an owner asking for another address moves; a refused move keeps the old one", "ha", &static, nil, []step{
			{network: "blue", owner: "a", got: "10.100.1.1"},
			{network: "blue", owner: "a", want: "10.100.1.9", got: "10.100.1.9"},
			{network: "blue", owner: "b", got: "10.100.1.1"},
			{network: "blue", owner: "a", want: "10.100.2.9", err: agentapi.ErrAddressTaken},
			{network: "blue", owner: "c", want: "10.100.1.9", err: agentapi.ErrAddressTaken, errText: "is allocated to a (until its port appears, for 2m0s at most)"},
		}},
		{"TTL: an allocation without a port lapses", "ha", &static, nil, []step{
			{network: "blue", owner: "a", got: "10.100.1.1"},
			{before: advance(119 * time.Second), network: "blue", owner: "b", got: "10.100.1.2"},
			{before: advance(time.Second), network: "blue", owner: "c", got: "10.100.1.1"},
		}},
		{"TTL: a port claiming the address keeps it; removing the port frees it", "ha", &static, nil, []step{
			{network: "blue", owner: "a", got: "10.100.1.1"},
			{before: func(e *env) { e.a.SetPort("pa", port("blue", "10.100.1.1")); e.clk.t = e.clk.t.Add(time.Hour) },
				network: "blue", owner: "b", got: "10.100.1.2"},
			{network: "blue", owner: "a", got: "10.100.1.1"}, // the owner asks again: still its address
			{before: func(e *env) { e.a.DeletePort("pa") }, network: "blue", owner: "c", got: "10.100.1.1"},
		}},
		{"release", "ha", &static, nil, []step{
			{network: "blue", owner: "a", got: "10.100.1.1"},
			{network: "blue", owner: "b", got: "10.100.1.2"},
			{before: func(e *env) {
				e.a.Release("blue", "b", netip.MustParseAddr("10.100.1.1")) // not b's: nothing
				e.a.Release("blue", "a", netip.MustParseAddr("10.100.1.7")) // not held: nothing
			}, network: "blue", owner: "c", got: "10.100.1.3"},
			{before: func(e *env) { e.a.Release("blue", "a", netip.MustParseAddr("10.100.1.1")) },
				network: "blue", owner: "d", got: "10.100.1.1"},
			{before: func(e *env) { e.a.ReleaseAddress("blue", netip.MustParseAddr("10.100.1.2")) },
				network: "blue", owner: "e", got: "10.100.1.2"},
		}},
		{"release leaves a port's address held", "ha", &static, nil, []step{
			{network: "blue", owner: "a", got: "10.100.1.1"},
			{before: func(e *env) {
				e.a.SetPort("pa", port("blue", "10.100.1.1"))
				e.a.Release("blue", "a", netip.MustParseAddr("10.100.1.1"))
			}, network: "blue", owner: "b", got: "10.100.1.2"},
		}},
		{"wanted addresses", "ha", &static, nil, []step{
			{network: "blue", owner: "a", want: "10.100.1.200", got: "10.100.1.200"},
			{network: "blue", owner: "b", want: "10.100.1.0", got: "10.100.1.0"}, // the range's first: when asked
			{network: "blue", owner: "c", want: "10.100.9.9", got: "10.100.9.9"}, // no host's range
			{network: "blue", owner: "d", want: "10.100.2.5", err: agentapi.ErrAddressTaken, errText: "is in host hb's range 10.100.2.0/24"},
			{network: "blue", owner: "d", want: "10.101.0.1", err: agentapi.ErrAddressTaken, errText: "outside the network's subnet 10.100.0.0/16"},
			{network: "blue", owner: "d", want: "10.100.0.0", err: agentapi.ErrAddressTaken, errText: "network address"},
			{network: "blue", owner: "d", want: "10.100.255.255", err: agentapi.ErrAddressTaken, errText: "broadcast address"},
		}},
		{"exhausted, then freed", "ha", &static, nil, []step{
			{network: "tiny", owner: "a", got: "10.30.0.1"},
			{network: "tiny", owner: "b", got: "10.30.0.2"},
			{network: "tiny", owner: "c", err: agentapi.ErrExhausted, errText: "in this host's range 10.30.0.0/30 of network tiny"},
			{before: func(e *env) { e.a.Release("tiny", "a", netip.MustParseAddr("10.30.0.1")) }, network: "tiny", owner: "c", got: "10.30.0.1"},
		}},
		{"static: a host without a range has no share", "hb", &static, nil, []step{
			{network: "tiny", owner: "a", err: agentapi.ErrExhausted, errText: "host hb has no range in network tiny"},
			{network: "tiny", owner: "a", want: "10.30.0.100", got: "10.30.0.100"},
		}},
		{"claims: other hosts' claims skipped, own claims not", "ha", &claims, nil, []step{
			{network: "green", owner: "a", want: "10.200.0.4", err: agentapi.ErrAddressTaken, errText: "is claimed by host hb"},
			{network: "green", owner: "a", want: "10.200.0.3", got: "10.200.0.3"},
		}},
		{"claims: exhausted", "ha", &claims, map[string]netip.Addr{"green": netip.MustParseAddr("10.200.0.6")}, []step{
			// 10.200.0.0/29: 1..6 usable; 1, 4 hb's; 6 the gateway: 2, 3, 5 free.
			{network: "green", owner: "a"}, {network: "green", owner: "b"}, {network: "green", owner: "c"},
			{network: "green", owner: "d", err: agentapi.ErrExhausted, errText: "every address is held here or claimed by another host"},
		}},
		{"unknown network", "ha", &static, nil, []step{
			{network: "red", owner: "a", err: agentapi.ErrUnknownNetwork, errText: `"red": not in the cluster view`},
		}},
		{"not ready before the first view", "ha", nil, nil, []step{
			{network: "blue", owner: "a", err: agentapi.ErrNotReady},
		}},
		{"bad requests", "ha", &static, nil, []step{
			{network: "blue", owner: "", err: agentapi.ErrInvalid},
			{network: "blue", owner: "a", want: "fd00::1", err: agentapi.ErrInvalid},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.node, tc.view, tc.gateways)
			for i, s := range tc.steps {
				if s.before != nil {
					s.before(e)
				}
				var want netip.Addr
				if s.want != "" {
					want = netip.MustParseAddr(s.want)
				}
				l, err := e.a.Allocate(s.network, s.owner, want)
				switch {
				case s.err != nil:
					if !errors.Is(err, s.err) || !strings.Contains(fmt.Sprint(err), s.errText) {
						t.Fatalf("step %d (%s): err %v, want %v with %q", i, s.owner, err, s.err, s.errText)
					}
				case err != nil:
					t.Fatalf("step %d (%s): %v", i, s.owner, err)
				case s.got != "" && l.Address.Addr().String() != s.got:
					t.Fatalf("step %d (%s): got %s, want %s", i, s.owner, l.Address, s.got)
				}
			}
		})
	}
}

// TestLease: the lease carries the network's prefix length and this
// host's gateway; Network answers the same.
func TestLease(t *testing.T) {
	gw := netip.MustParseAddr("10.100.1.1")
	e := newEnv(t, "ha", &static, map[string]netip.Addr{"blue": gw})
	l, err := e.a.Allocate("blue", "a", netip.Addr{})
	if err != nil || l != (Lease{Network: "blue", Address: netip.MustParsePrefix("10.100.1.2/16"), Gateway: gw}) {
		t.Fatalf("lease %+v, %v", l, err)
	}
	if sub, g, err := e.a.Network("blue"); err != nil || sub != netip.MustParsePrefix("10.100.0.0/16") || g != gw {
		t.Fatalf("network: %v %v %v", sub, g, err)
	}
	if _, g, err := e.a.Network("tiny"); err != nil || g.IsValid() {
		t.Fatalf("tiny has no gateway: %v %v", g, err)
	}
}

// TestClaimsOffset: in claims mode two hosts start their search at
// different places, derived from their names, and skip what is held.
func TestClaimsOffset(t *testing.T) {
	v := cluster.View{Networks: []cluster.Network{{Name: "green", VNI: 200, Subnet: netip.MustParsePrefix("10.200.0.0/16")}},
		Hosts: []cluster.Host{{Name: "ha"}, {Name: "hb"}}}
	first := map[string]netip.Addr{}
	for _, node := range []string{"ha", "hb"} {
		e := newEnv(t, node, &v, nil)
		h := fnv.New32a()
		h.Write([]byte(node))
		want := addr(u32(netip.MustParseAddr("10.200.0.0")) + h.Sum32()%(1<<16))
		l, err := e.a.Allocate("green", "a", netip.Addr{})
		if err != nil || l.Address.Addr() != want {
			t.Fatalf("%s: first pick %v (%v), want %s (its offset)", node, l.Address, err, want)
		}
		e.a.SetPort("p", port("green", want.String()))
		if l, _ := e.a.Allocate("green", "b", netip.Addr{}); l.Address.Addr() != want.Next() {
			t.Fatalf("%s: second pick %v, want %s", node, l.Address, want.Next())
		}
		first[node] = want
	}
	if first["ha"] == first["hb"] {
		t.Fatalf("both hosts start at %s", first["ha"])
	}
}

// TestScanWraps: from the offset the search wraps around the subnet.
func TestScanWraps(t *testing.T) {
	e := newEnv(t, "ha", &static, nil)
	s, err := e.a.shareLocked("tiny")
	if err != nil {
		t.Fatal(err)
	}
	// 10.30.0.0/24 scanned from .254: .254, then .255 (broadcast) and .0
	// (network) skipped, then .1.
	first := u32(netip.MustParseAddr("10.30.0.0"))
	for _, want := range []string{"10.30.0.254", "10.30.0.1"} {
		ip, ok := s.scan(first, 256, 254)
		if !ok || ip.String() != want {
			t.Fatalf("scan: %v %v, want %s", ip, ok, want)
		}
		e.a.SetPort("p"+want, port("tiny", want))
	}
}
