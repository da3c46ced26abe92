package ipam

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustAllocate(t *testing.T, e *env, network, owner string) netip.Addr {
	t.Helper()
	l, err := e.a.Allocate(network, owner, netip.Addr{})
	if err != nil {
		t.Fatalf("allocate %s for %s: %v", network, owner, err)
	}
	return l.Address.Addr()
}

// TestAllocations: the list names each allocation's owner, its port once
// one claims the address, else its expiry; it filters by network and
// owner prefix, and drops what the TTL ended.
func TestAllocations(t *testing.T) {
	e := newEnv(t, "ha", &static, nil)
	t0 := e.clk.t
	mustAllocate(t, e, "blue", "cni:c1/eth0")   // 10.100.1.1
	mustAllocate(t, e, "blue", "attach:a/eth0") // 10.100.1.2
	mustAllocate(t, e, "tiny", "cni:c2/eth0")   // 10.30.0.1
	e.a.SetPort("pc1", port("blue", "10.100.1.1"))
	e.a.SetPort("pz", port("blue", "10.100.1.50")) // a port without allocation: not listed
	e.clk.t = t0.Add(time.Minute)
	mustAllocate(t, e, "blue", "cni:late/eth0") // 10.100.1.3, expires a minute after the others
	exp := t0.Add(2 * time.Minute)
	held := func(network, ip, owner, port string, expires time.Time) Held {
		return Held{Network: network, IP: netip.MustParseAddr(ip), Owner: owner, Port: port, Expires: expires}
	}
	cases := []struct {
		name            string
		advance         time.Duration
		network, prefix string
		want            []Held
	}{
		{"all, by network and address", 0, "", "", []Held{
			held("blue", "10.100.1.1", "cni:c1/eth0", "pc1", time.Time{}),
			held("blue", "10.100.1.2", "attach:a/eth0", "", exp),
			held("blue", "10.100.1.3", "cni:late/eth0", "", exp.Add(time.Minute)),
			held("tiny", "10.30.0.1", "cni:c2/eth0", "", exp),
		}},
		{"one network, one kind of owner", 0, "blue", "cni:", []Held{
			held("blue", "10.100.1.1", "cni:c1/eth0", "pc1", time.Time{}),
			held("blue", "10.100.1.3", "cni:late/eth0", "", exp.Add(time.Minute)),
		}},
		{"unknown network", 0, "red", "", nil},
		{"the TTL ends those without a port", time.Minute, "", "", []Held{
			held("blue", "10.100.1.1", "cni:c1/eth0", "pc1", time.Time{}),
			held("blue", "10.100.1.3", "cni:late/eth0", "", exp.Add(time.Minute)),
		}},
	}
	for _, tc := range cases {
		e.clk.t = e.clk.t.Add(tc.advance)
		if got := e.a.Allocations(tc.network, tc.prefix); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got\n%+v\nwant\n%+v", tc.name, got, tc.want)
		}
	}
}

// TestReleaseOwner: an owner's allocation ends without its address; a
// port claiming the address keeps it; other owners and networks are
// untouched.
func TestReleaseOwner(t *testing.T) {
	e := newEnv(t, "ha", &static, nil)
	a := mustAllocate(t, e, "blue", "cni:a/eth0")
	b := mustAllocate(t, e, "blue", "cni:b/eth0")
	mustAllocate(t, e, "tiny", "cni:a/eth0")
	if ip, ok := e.a.ReleaseOwner("blue", "cni:nobody/eth0"); ok {
		t.Fatalf("released %s for an owner holding nothing", ip)
	}
	if ip, ok := e.a.ReleaseOwner("blue", "cni:a/eth0"); !ok || ip != a {
		t.Fatalf("release a: %v %v, want %s", ip, ok, a)
	}
	if got := mustAllocate(t, e, "blue", "cni:c/eth0"); got != a {
		t.Fatalf("a's address not free again: the next got %s, want %s", got, a)
	}
	if got := e.a.Allocations("tiny", ""); len(got) != 1 || got[0].Owner != "cni:a/eth0" {
		t.Fatalf("a's allocation in tiny: %+v", got)
	}
	e.a.SetPort("pb", port("blue", b.String()))
	if _, ok := e.a.ReleaseOwner("blue", "cni:b/eth0"); !ok {
		t.Fatal("b held nothing")
	}
	if l, err := e.a.Allocate("blue", "d", b); err == nil {
		t.Fatalf("port pb's address given to d: %v", l)
	}
	if _, ok := e.a.ReleaseOwner("blue", "cni:a/eth0"); ok {
		t.Fatal("released twice")
	}
}

// TestStats: per network of the view, addresses held by ports, allocations
// waiting for theirs, and those the TTL ended.
func TestStats(t *testing.T) {
	e := newEnv(t, "ha", nil, nil)
	if st := e.a.Stats(); st != nil {
		t.Fatalf("before the view: %v", st)
	}
	e.a.SetView(static, nil)
	mustAllocate(t, e, "blue", "a")
	mustAllocate(t, e, "blue", "b")
	mustAllocate(t, e, "tiny", "c")
	e.a.SetPort("pa", port("blue", "10.100.1.1"))
	e.a.SetPort("px", port("blue", "10.100.1.99"))
	e.a.SetPort("junk", port("no-such-network", "10.1.1.1"))
	want := map[string]NetworkStats{"blue": {Ports: 2, Pending: 1}, "tiny": {Pending: 1}}
	if got := e.a.Stats(); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	e.clk.t = e.clk.t.Add(DefaultTTL)
	want = map[string]NetworkStats{"blue": {Ports: 2, Expired: 1}, "tiny": {Expired: 1}}
	if got := e.a.Stats(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after the TTL: got %+v, want %+v", got, want)
	}
	e.a.DeletePort("pa") // its allocation ends with it: not an expiry
	want["blue"] = NetworkStats{Ports: 1, Expired: 1}
	if got := e.a.Stats(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after pa went: got %+v, want %+v", got, want)
	}
}

// TestReown: an allocation changes hands; the new owner asking again gets
// it, the old one gets another; an owner holding another address, or an
// address without allocation, is refused.
func TestReown(t *testing.T) {
	e := newEnv(t, "ha", &static, nil)
	a := mustAllocate(t, e, "blue", "docker:1")
	b := mustAllocate(t, e, "blue", "docker:2")
	for _, tc := range []struct {
		ip    netip.Addr
		owner string
		want  bool
	}{
		{a, "docker:ep-a", true},
		{a, "docker:ep-a", true}, // again: already its own
		{b, "docker:ep-a", false},
		{netip.MustParseAddr("10.100.1.99"), "docker:ep-x", false},
		{b, "", false},
	} {
		if got := e.a.Reown("blue", tc.ip, tc.owner); got != tc.want {
			t.Errorf("Reown(%s, %q) = %v, want %v", tc.ip, tc.owner, got, tc.want)
		}
	}
	if got := owners(e.a.Allocations("blue", "")); got != "10.100.1.1=docker:ep-a 10.100.1.2=docker:2" {
		t.Fatalf("after: %s", got)
	}
	if got := mustAllocate(t, e, "blue", "docker:ep-a"); got != a {
		t.Errorf("the new owner asking again got %s, want %s", got, a)
	}
	if got := mustAllocate(t, e, "blue", "docker:1"); got == a {
		t.Errorf("the old owner still holds %s", a)
	}
}

func owners(l []Held) string {
	var s []string
	for _, h := range l {
		s = append(s, h.IP.String()+"="+h.Owner)
	}
	return strings.Join(s, " ")
}

// TestOnExpire: each allocation the TTL ends is reported once, with its
// owner; released ones and those a port claims are not.
func TestOnExpire(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	var got []string
	a, err := New(Config{Node: "ha", Now: clk.now, OnExpire: func(h Held) { got = append(got, h.IP.String()+"="+h.Owner) }})
	if err != nil {
		t.Fatal(err)
	}
	a.SetView(static, nil)
	e := &env{a, clk}
	mustAllocate(t, e, "blue", "cni:dead/eth0")      // .1: expires
	b := mustAllocate(t, e, "blue", "cni:gone/eth0") // .2: released
	mustAllocate(t, e, "blue", "cni:live/eth0")      // .3: its port claims it
	a.ReleaseOwner("blue", "cni:gone/eth0")
	a.SetPort("plive", port("blue", "10.100.1.3"))
	clk.t = clk.t.Add(DefaultTTL)
	a.Stats()
	a.Stats()
	if want := "10.100.1.1=cni:dead/eth0"; strings.Join(got, " ") != want {
		t.Fatalf("reported %q, want %q (not %s, released)", got, want, b)
	}
}
