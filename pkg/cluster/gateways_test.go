package cluster

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseGateways(t *testing.T) {
	v, err := Parse([]byte(`
networks:
  - { name: blue, vni: 100, subnet: 10.100.0.0/16 }
  - { name: red, vni: 200, subnet: 10.200.0.0/16, gateway: false }
  - { name: green, vni: 300, subnet: 10.30.0.0/16, gateway: true }
hosts:
  - name: a
    tunnel_ip: 192.0.2.1
    ranges: { blue: 10.100.1.0/24 }
    gateways: { blue: 10.100.1.254, green: 10.30.9.9 }
`))
	if err != nil {
		t.Fatal(err)
	}
	red, _ := v.Network("red")
	green, _ := v.Network("green")
	blue, _ := v.Network("blue")
	if !red.NoGateway || green.NoGateway || blue.NoGateway {
		t.Errorf("NoGateway: blue %v red %v green %v, want false true false", blue.NoGateway, red.NoGateway, green.NoGateway)
	}
	h, _ := v.Host("a")
	want := map[string]netip.Addr{"blue": netip.MustParseAddr("10.100.1.254"), "green": netip.MustParseAddr("10.30.9.9")}
	if len(h.Gateways) != 2 || h.Gateways["blue"] != want["blue"] || h.Gateways["green"] != want["green"] {
		t.Errorf("gateways %v, want %v", h.Gateways, want)
	}
	changed := h
	changed.Gateways = map[string]netip.Addr{"blue": netip.MustParseAddr("10.100.1.253")}
	if h.Equal(changed) {
		t.Error("hosts with different gateways are Equal")
	}
}

func TestParseBadGateways(t *testing.T) {
	const head = `
networks:
  - { name: blue, vni: 100, subnet: 10.100.0.0/16 }
  - { name: red, vni: 200, subnet: 10.200.0.0/16, gateway: false }
hosts:
  - name: a
    tunnel_ip: 192.0.2.1
    ranges: { blue: 10.100.1.0/24 }
`
	for _, tc := range []struct{ gateways, want string }{
		{`{ blue: 10.100.2.1 }`, `line 9: host "a" gateway blue: 10.100.2.1 is outside the host's range 10.100.1.0/24`},
		{`{ blue: 10.101.0.1 }`, `10.101.0.1 is outside the network's subnet 10.100.0.0/16`},
		{`{ red: 10.200.0.5 }`, `host "a" gateway red: network "red" has gateway: false`},
		{`{ green: 10.1.1.1 }`, `unknown network "green"`},
		{`{ blue: nope }`, `address "nope" is not an IPv4 address`},
		{`{ blue: "fe80::1" }`, `fe80::1 is not IPv4`},
		{"{ blue: 10.100.1.7 }\n  - { name: b, tunnel_ip: 192.0.2.2, gateways: { blue: 10.100.1.7 } }",
			`host "b" gateway blue: 10.100.1.7 is also the gateway of host "a"`},
	} {
		_, err := Parse([]byte(head + "    gateways: " + tc.gateways + "\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("gateways %s: error %v, want it to contain %q", tc.gateways, err, tc.want)
		}
	}
}

func TestGatewayProblem(t *testing.T) {
	sub, rng := netip.MustParsePrefix("10.0.0.0/16"), netip.MustParsePrefix("10.0.0.0/24")
	for _, tc := range []struct {
		ip   string
		r    netip.Prefix
		want string
	}{
		{"10.0.0.1", rng, ""},
		{"10.0.5.1", netip.Prefix{}, ""},
		{"10.0.0.0", rng, "network address"},
		{"10.0.255.255", netip.Prefix{}, "broadcast address"},
		{"10.0.1.1", rng, "outside the host's range"},
		{"10.1.0.1", netip.Prefix{}, "outside the network's subnet"},
	} {
		got := GatewayProblem(sub, tc.r, netip.MustParseAddr(tc.ip))
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("GatewayProblem(%s) = %q, want %q", tc.ip, got, tc.want)
		}
	}
}
