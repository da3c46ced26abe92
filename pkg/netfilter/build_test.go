package netfilter

import (
	"errors"
	"flag"
	"net/netip"
	"os"
	"strings"
	"testing"
)

// The networks of the reference state and of the kernel test bed.
var (
	blueNet = Network{Name: "blue", Subnet: netip.MustParsePrefix("10.100.0.0/16"), Gateway: "gw-blue"}
	redNet  = Network{Name: "red", Subnet: netip.MustParsePrefix("10.200.0.0/16"), Gateway: "gw-red"}
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from Build")

// referenceState has a NAT network and a routed one, a TCP and a UDP
// publish, a container port published twice (they share its traffic
// counters), a blocked range with an allowed hole, and two items refused.
func referenceState() State {
	blueIP, redIP := netip.MustParseAddr("10.100.1.5"), netip.MustParseAddr("10.200.1.7")
	return State{
		Networks: []Network{redNet2(), blueNet,
			{Name: "bad net", Subnet: netip.MustParsePrefix("10.9.0.0/16"), Gateway: "gw-bad"}},
		Publishes: []Publish{
			{Network: "blue", Endpoint: "c1", Proto: TCP, HostPort: 8080, IP: blueIP, Port: 80},
			{Network: "red", Endpoint: "c2", Proto: UDP, HostPort: 5353, IP: redIP, Port: 53},
			{Network: "blue", Endpoint: "c1", Proto: TCP, HostPort: 8081, IP: blueIP, Port: 80},
			{Network: "blue", Endpoint: "c3", Proto: TCP, HostPort: 8080, IP: netip.MustParseAddr("10.100.1.6"), Port: 80},
		},
		Blocked:  []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("203.0.113.9/32")},
		Allowed:  []netip.Prefix{netip.MustParsePrefix("192.0.2.128/25")},
		Underlay: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
	}
}

// redNet2 is red without NAT (routed).
func redNet2() Network { n := redNet; n.Routed = true; return n }

var referenceRefusals = []string{
	`network "bad net": invalid: name has ' ' (letters, digits, '.', '_', '-' only)`,
	`publish tcp/8080 -> 10.100.1.6:80 of "c3": conflict: host port tcp/8080 is taken by "c1"`,
}

func TestBuildGolden(t *testing.T) {
	rs, refused := Build("", referenceState())
	var got []string
	for _, r := range refused {
		got = append(got, r.Error())
	}
	if strings.Join(got, "\n") != strings.Join(referenceRefusals, "\n") {
		t.Errorf("refusals:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(referenceRefusals, "\n"))
	}
	text := rs.String() + "\n# DOCKER-USER (table ip filter), at the top:\n" + rs.DockerUserString()
	const golden = "testdata/reference.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if text != string(want) {
		t.Errorf("Build differs from %s (go test -update rewrites it):\n%s", golden, text)
	}
	if g := strings.Join(rs.Gateways, ","); g != "gw-blue,gw-red" {
		t.Errorf("gateways %s", g)
	}
}

// The same State in another order gives the same rules.
func TestBuildDeterministic(t *testing.T) {
	s := referenceState()
	a, _ := Build("", s)
	s.Networks[0], s.Networks[1] = s.Networks[1], s.Networks[0]
	s.Publishes[1], s.Publishes[2] = s.Publishes[2], s.Publishes[1]
	s.Blocked[0], s.Blocked[1] = s.Blocked[1], s.Blocked[0]
	b, _ := Build("", s)
	if a.String() != b.String() {
		t.Errorf("reordering the State changed the rules:\n%s\nvs\n%s", a, b)
	}
}

func TestRefusals(t *testing.T) {
	sub := netip.MustParsePrefix("10.1.0.0/16")
	ok := Network{Name: "n", Subnet: sub, Gateway: "gw-n"}
	ip := netip.MustParseAddr("10.1.0.9")
	pub := Publish{Network: "n", Endpoint: "e", Proto: TCP, HostPort: 80, IP: ip, Port: 80}
	with := func(f func(*Publish)) Publish { p := pub; f(&p); return p }
	net := func(f func(*Network)) Network { n := ok; f(&n); return n }
	cases := []struct {
		name  string
		state State
		want  string // substring of the only refusal
		base  error
	}{
		{"empty name", State{Networks: []Network{net(func(n *Network) { n.Name = "" })}}, "name is empty", ErrInvalid},
		{"long gateway", State{Networks: []Network{net(func(n *Network) { n.Gateway = "gateway-name-16b" })}}, "longer than 15", ErrInvalid},
		{"gateway slash", State{Networks: []Network{net(func(n *Network) { n.Gateway = "a/b" })}}, "'/'", ErrInvalid},
		{"ipv6 subnet", State{Networks: []Network{net(func(n *Network) { n.Subnet = netip.MustParsePrefix("fd00::/64") })}}, "not an IPv4 prefix", ErrInvalid},
		{"no subnet", State{Networks: []Network{net(func(n *Network) { n.Subnet = netip.Prefix{} })}}, "not an IPv4 prefix", ErrInvalid},
		{"host bits", State{Networks: []Network{net(func(n *Network) { n.Subnet = netip.MustParsePrefix("10.1.2.3/16") })}}, "host bits", ErrInvalid},
		{"slash 32", State{Networks: []Network{net(func(n *Network) { n.Subnet = netip.MustParsePrefix("10.1.2.3/32") })}}, "1..30", ErrInvalid},
		{"underlay overlap", State{Networks: []Network{ok}, Underlay: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, "overlaps the underlay", ErrInvalid},
		{"blocked overlap", State{Networks: []Network{ok}, Blocked: []netip.Prefix{netip.MustParsePrefix("10.1.5.5/32")}}, "overlaps the underlay", ErrInvalid},
		{"duplicate name", State{Networks: []Network{ok, net(func(n *Network) { n.Gateway = "gw-2"; n.Subnet = netip.MustParsePrefix("10.2.0.0/16") })}}, "duplicate network name", ErrConflict},
		{"duplicate gateway", State{Networks: []Network{ok, net(func(n *Network) { n.Name = "m"; n.Subnet = netip.MustParsePrefix("10.2.0.0/16") })}}, `gateway "gw-n" is network "n"'s`, ErrConflict},
		{"overlapping subnets", State{Networks: []Network{ok, net(func(n *Network) { n.Name = "m"; n.Gateway = "gw-m"; n.Subnet = netip.MustParsePrefix("10.1.128.0/17") })}}, "overlaps network", ErrConflict},
		{"bad protocol", State{Networks: []Network{ok}, Publishes: []Publish{with(func(p *Publish) { p.Proto = "sctp" })}}, `protocol "sctp"`, ErrInvalid},
		{"host port 0", State{Networks: []Network{ok}, Publishes: []Publish{with(func(p *Publish) { p.HostPort = 0 })}}, "port 0", ErrInvalid},
		{"container port 0", State{Networks: []Network{ok}, Publishes: []Publish{with(func(p *Publish) { p.Port = 0 })}}, "port 0", ErrInvalid},
		{"outside subnet", State{Networks: []Network{ok}, Publishes: []Publish{with(func(p *Publish) { p.IP = netip.MustParseAddr("10.2.0.1") })}}, "not a host address", ErrInvalid},
		{"network address", State{Networks: []Network{ok}, Publishes: []Publish{with(func(p *Publish) { p.IP = sub.Addr() })}}, "not a host address", ErrInvalid},
		{"broadcast", State{Networks: []Network{ok}, Publishes: []Publish{with(func(p *Publish) { p.IP = netip.MustParseAddr("10.1.255.255") })}}, "not a host address", ErrInvalid},
		{"no address", State{Networks: []Network{ok}, Publishes: []Publish{with(func(p *Publish) { p.IP = netip.Addr{} })}}, "not a host address", ErrInvalid},
		{"unknown network", State{Networks: []Network{ok}, Publishes: []Publish{with(func(p *Publish) { p.Network = "x" })}}, "not served", ErrInvalid},
		{"endpoint quote", State{Networks: []Network{ok}, Publishes: []Publish{with(func(p *Publish) { p.Endpoint = `a"b` })}}, "endpoint has", ErrInvalid},
		{"port taken", State{Networks: []Network{ok}, Publishes: []Publish{pub, with(func(p *Publish) { p.Endpoint = "f" })}}, `taken by "e"`, ErrConflict},
		{"bad blocked", State{Blocked: []netip.Prefix{netip.MustParsePrefix("fd00::/8")}}, "not an IPv4 prefix", ErrInvalid},
		{"bad uplink", State{Uplinks: []string{""}}, "name is empty", ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, refused := Build("", c.state)
			if len(refused) != 1 {
				t.Fatalf("refusals %v, want one", refused)
			}
			var r *Refusal
			if !errors.As(refused[0], &r) || !errors.Is(refused[0], c.base) || !strings.Contains(r.Error(), c.want) {
				t.Fatalf("refusal %q (%T), want %q wrapping %v", refused[0], refused[0], c.want, c.base)
			}
		})
	}
}

// A refused network takes its publishes with it; the others stay.
func TestRefusedNetworkPublishes(t *testing.T) {
	s := referenceState()
	s.Networks = s.Networks[1:] // without red
	rs, refused := Build("", s)
	if len(rs.publishes) != 2 || len(refused) != 3 {
		t.Fatalf("publishes %v, refusals %v", rs.publishes, refused)
	}
}

func FuzzBuild(f *testing.F) {
	f.Add("blue", "10.100.0.0/16", "gw-blue", false, "c1", "tcp", uint16(8080), "10.100.1.5", uint16(80), "192.0.2.0/24", "192.0.2.128/25")
	f.Add("", "", "", true, "", "", uint16(0), "", uint16(0), "", "")
	f.Add("n", "0.0.0.0/1", "x", false, "e", "udp", uint16(65535), "127.255.255.254", uint16(1), "0.0.0.0/0", "255.255.255.255/32")
	f.Fuzz(func(t *testing.T, name, subnet, gw string, routed bool, ep, proto string, hport uint16, ip string, port uint16, blocked, allowed string) {
		sub, _ := netip.ParsePrefix(subnet)
		addr, _ := netip.ParseAddr(ip)
		bl, _ := netip.ParsePrefix(blocked)
		al, _ := netip.ParsePrefix(allowed)
		s := State{
			Networks:  []Network{{Name: name, Subnet: sub, Gateway: gw, Routed: routed}},
			Publishes: []Publish{{Network: name, Endpoint: ep, Proto: Proto(proto), HostPort: hport, IP: addr, Port: port}},
			Blocked:   []netip.Prefix{bl}, Allowed: []netip.Prefix{al},
		}
		rs, refused := Build("", s)
		for _, r := range refused {
			var ref *Refusal
			if !errors.As(r, &ref) || !(errors.Is(r, ErrInvalid) || errors.Is(r, ErrConflict)) {
				t.Fatalf("refusal %v is not a *Refusal wrapping ErrInvalid or ErrConflict", r)
			}
		}
		for _, c := range rs.Chains {
			for _, r := range c.Rules {
				if len(r.Comment) > 250 {
					t.Fatalf("comment too long: %q", r.Comment)
				}
				_ = r.exprs()
			}
		}
		_ = rs.String()
		_ = elements(rs.blocked)
	})
}
