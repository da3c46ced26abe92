package cluster

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goodFile = `# two networks, three hosts, out of order on purpose
networks:
  - name: red
    vni: 200
    subnet: 10.200.0.0/16
  - name: blue
    vni: 100
    subnet: 10.100.0.0/16
hosts:
  - name: host-b
    tunnel_ip: 192.0.2.2
    ranges: { blue: 10.100.2.0/24 }
  - name: host-a
    tunnel_ip: 192.0.2.1
    ranges:
      blue: 10.100.1.0/24
      red: 10.200.1.0/24
  - name: gw.example.org
    tunnel_ip: 192.0.2.3
`

func TestParseGood(t *testing.T) {
	v, err := Parse([]byte(goodFile))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := View{
		Networks: []Network{
			{Name: "blue", VNI: 100, Subnet: netip.MustParsePrefix("10.100.0.0/16")},
			{Name: "red", VNI: 200, Subnet: netip.MustParsePrefix("10.200.0.0/16")},
		},
		Hosts: []Host{
			{Name: "gw.example.org", TunnelIP: netip.MustParseAddr("192.0.2.3")},
			{Name: "host-a", TunnelIP: netip.MustParseAddr("192.0.2.1"), Ranges: map[string]netip.Prefix{
				"blue": netip.MustParsePrefix("10.100.1.0/24"), "red": netip.MustParsePrefix("10.200.1.0/24")}},
			{Name: "host-b", TunnelIP: netip.MustParseAddr("192.0.2.2"), Ranges: map[string]netip.Prefix{
				"blue": netip.MustParsePrefix("10.100.2.0/24")}},
		},
	}
	if !v.Equal(want) {
		t.Fatalf("view:\n got %+v\nwant %+v", v, want)
	}
	if n, ok := v.Network("red"); !ok || n.VNI != 200 {
		t.Errorf("Network(red) = %+v, %v", n, ok)
	}
	if _, ok := v.Network("green"); ok {
		t.Error("Network(green) found")
	}
	if h, ok := v.Host("host-b"); !ok || h.TunnelIP != netip.MustParseAddr("192.0.2.2") {
		t.Errorf("Host(host-b) = %+v, %v", h, ok)
	}
	if err := Validate(v); err != nil {
		t.Errorf("Validate(parsed view): %v", err)
	}
}

// TestParseNAT: nat is optional and true by default; false sets NoNAT; it
// must be a boolean.
func TestParseNAT(t *testing.T) {
	tests := []struct {
		line  string // the network's nat line ("": none)
		noNAT bool
		err   string
	}{
		{"", false, ""},
		{"    nat: true\n", false, ""},
		{"    nat: false\n", true, ""},
		{"    nat: no-thanks\n", false, "line 5: cannot unmarshal !!str `no-thanks` into bool"},
	}
	for _, tc := range tests {
		v, err := Parse([]byte(net1 + tc.line))
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.line, err, tc.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.line, err)
		case v.Networks[0].NoNAT != tc.noNAT:
			t.Errorf("%q: NoNAT %v, want %v", tc.line, v.Networks[0].NoNAT, tc.noNAT)
		}
	}
	// A change of nat alone is a changed network (the gateways' rules follow it).
	on, _ := Parse([]byte(net1))
	off, _ := Parse([]byte(net1 + "    nat: false\n"))
	if d := Diff(on, off); len(d.NetworksChanged) != 1 {
		t.Errorf("nat: false: delta %v, want one network changed", d)
	}
}

func TestParseDeterministic(t *testing.T) {
	reordered := `
hosts:
  - {name: gw.example.org, tunnel_ip: 192.0.2.3}
  - {name: host-a, tunnel_ip: 192.0.2.1, ranges: {red: 10.200.1.0/24, blue: 10.100.1.0/24}}
  - {name: host-b, tunnel_ip: 192.0.2.2, ranges: {blue: 10.100.2.0/24}}
networks:
  - {name: blue, vni: 100, subnet: 10.100.0.0/16}
  - {name: red, vni: 200, subnet: 10.200.0.0/16}
`
	a, errA := Parse([]byte(goodFile))
	b, errB := Parse([]byte(reordered))
	if errA != nil || errB != nil {
		t.Fatalf("Parse: %v, %v", errA, errB)
	}
	if !a.Equal(b) {
		t.Fatalf("same content in another order gave another view:\n%+v\n%+v", a, b)
	}
}

// net1 is a valid networks section that host cases build on.
const net1 = `networks:
  - name: blue
    vni: 100
    subnet: 10.100.0.0/16
`

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []string // fragments that must all appear in the error
	}{
		{"empty", "", []string{"file is empty"}},
		{"comments only", "# nothing\n", []string{"file is empty"}},
		{"null document", "~\n", []string{"file is empty"}},
		{"syntax", "networks: [\n", []string{"yaml: line 1: did not find expected node content"}},
		{"top level a list", "- a\n", []string{"line 1: cannot unmarshal !!seq into a mapping of networks and hosts"}},
		{"two documents", net1 + "---\n" + net1, []string{"line 5: a second YAML document"}},
		{"unknown top field", net1 + "hostz: []\n", []string{`line 5: unknown field "hostz"`}},
		{"unknown network field", "networks:\n  - name: blue\n    vnii: 100\n    subnet: 10.100.0.0/16\n",
			[]string{`line 3: unknown field "vnii"`}},
		{"unknown host field", net1 + "hosts:\n  - name: a\n    tunnel_ip: 192.0.2.1\n    tunnelip: 1.2.3.4\n",
			[]string{`line 8: unknown field "tunnelip"`}},
		{"hosts not a list", net1 + "hosts: {a: b}\n", []string{"line 5: cannot unmarshal !!map into a list of hosts"}},
		{"vni not a number", "networks:\n  - {name: blue, vni: abc, subnet: 10.0.0.0/8}\n", []string{"line 2: cannot unmarshal !!str `abc` into int64"}},
		{"missing network name", "networks:\n  - {vni: 1, subnet: 10.0.0.0/8}\n", []string{"line 2: networks[0]: name is missing"}},
		{"duplicate network name", net1 + "  - name: blue\n    vni: 101\n    subnet: 10.101.0.0/16\n",
			[]string{`line 5: network "blue": duplicate network name (first at line 2)`}},
		{"vni 0", "networks:\n  - {name: blue, vni: 0, subnet: 10.0.0.0/8}\n", []string{`line 2: network "blue": vni 0 is outside 1-16777215`}},
		{"vni negative", "networks:\n  - {name: blue, vni: -1, subnet: 10.0.0.0/8}\n", []string{"vni -1 is outside 1-16777215"}},
		{"vni too big", "networks:\n  - {name: blue, vni: 16777216, subnet: 10.0.0.0/8}\n", []string{"vni 16777216 is outside"}},
		{"vni above 32 bits", "networks:\n  - {name: blue, vni: 4294967396, subnet: 10.0.0.0/8}\n", []string{"vni 4294967396 is outside"}},
		{"vni missing", "networks:\n  - {name: blue, subnet: 10.0.0.0/8}\n", []string{`network "blue": vni is missing`}},
		{"duplicate vni", net1 + "  - {name: red, vni: 100, subnet: 10.200.0.0/16}\n",
			[]string{`line 5: network "red": vni 100 is also used by network "blue"`}},
		{"subnet missing", "networks:\n  - {name: blue, vni: 1}\n", []string{"subnet is missing"}},
		{"subnet garbage", "networks:\n  - {name: blue, vni: 1, subnet: 10.0.0/8}\n", []string{`subnet "10.0.0/8" is not an IPv4 prefix`}},
		{"subnet ipv6", "networks:\n  - {name: blue, vni: 1, subnet: 'fd00::/64'}\n", []string{"subnet fd00::/64 is not IPv4"}},
		{"subnet host bits", "networks:\n  - {name: blue, vni: 1, subnet: 10.1.2.3/16}\n",
			[]string{"subnet 10.1.2.3/16 is not canonical", "did you mean 10.1.0.0/16"}},
		{"name with space", "networks:\n  - {name: 'blue net', vni: 1, subnet: 10.0.0.0/8}\n", []string{`name "blue net" has a character other than`}},
		{"name with slash", "networks:\n  - {name: 'blue/1', vni: 1, subnet: 10.0.0.0/8}\n", []string{`name "blue/1" has a character`}},
		{"name non-ascii", "networks:\n  - {name: 'bl\u00fce', vni: 1, subnet: 10.0.0.0/8}\n", []string{"has a character other than"}},
		{"name leading dash", "networks:\n  - {name: '-blue', vni: 1, subnet: 10.0.0.0/8}\n", []string{"must start and end with a letter or digit"}},
		{"network name too long", "networks:\n  - {name: " + strings.Repeat("b", 64) + ", vni: 1, subnet: 10.0.0.0/8}\n",
			[]string{"is longer than 63 characters"}},
		{"host name odd", net1 + "hosts:\n  - {name: 'host a', tunnel_ip: 192.0.2.1}\n", []string{`line 6: host "host a": name "host a" has a character`}},
		{"missing host name", net1 + "hosts:\n  - {tunnel_ip: 192.0.2.1}\n", []string{"line 6: hosts[0]: name is missing"}},
		{"duplicate host name", net1 + "hosts:\n  - {name: a, tunnel_ip: 192.0.2.1}\n  - {name: a, tunnel_ip: 192.0.2.2}\n",
			[]string{`line 7: host "a": duplicate host name (first at line 6)`}},
		{"duplicate tunnel ip", net1 + "hosts:\n  - {name: a, tunnel_ip: 192.0.2.1}\n  - {name: b, tunnel_ip: 192.0.2.1}\n",
			[]string{`line 7: host "b": tunnel_ip 192.0.2.1 is also used by host "a"`}},
		{"tunnel ip missing", net1 + "hosts:\n  - {name: a}\n", []string{`host "a": tunnel_ip is missing`}},
		{"tunnel ip garbage", net1 + "hosts:\n  - {name: a, tunnel_ip: 192.0.2}\n", []string{`tunnel_ip "192.0.2" is not an IPv4 address`}},
		{"tunnel ip ipv6", net1 + "hosts:\n  - {name: a, tunnel_ip: '2001:db8::1'}\n", []string{"tunnel_ip 2001:db8::1 is not IPv4"}},
		{"tunnel ip multicast", net1 + "hosts:\n  - {name: a, tunnel_ip: 224.0.0.5}\n", []string{"tunnel_ip 224.0.0.5 is not a unicast address"}},
		{"tunnel ip loopback", net1 + "hosts:\n  - {name: a, tunnel_ip: 127.0.0.1}\n", []string{"is not a unicast address"}},
		{"range unknown network", net1 + "hosts:\n  - name: a\n    tunnel_ip: 192.0.2.1\n    ranges:\n      green: 10.1.0.0/24\n",
			[]string{`line 9: host "a" range green: unknown network "green"`}},
		{"range outside subnet", net1 + "hosts:\n  - name: a\n    tunnel_ip: 192.0.2.1\n    ranges:\n      blue: 10.101.0.0/24\n",
			[]string{`line 9: host "a" range blue: 10.101.0.0/24 is outside the network's subnet 10.100.0.0/16`}},
		{"range wider than subnet", net1 + "hosts:\n  - {name: a, tunnel_ip: 192.0.2.1, ranges: {blue: 10.0.0.0/8}}\n",
			[]string{"10.0.0.0/8 is outside the network's subnet"}},
		{"range host bits", net1 + "hosts:\n  - {name: a, tunnel_ip: 192.0.2.1, ranges: {blue: 10.100.1.1/24}}\n",
			[]string{`host "a" range blue: 10.100.1.1/24 is not canonical`}},
		{"range garbage", net1 + "hosts:\n  - {name: a, tunnel_ip: 192.0.2.1, ranges: {blue: nope}}\n",
			[]string{`host "a" range blue: prefix "nope" is not an IPv4 prefix`}},
		{"range duplicate key", net1 + "hosts:\n  - name: a\n    tunnel_ip: 192.0.2.1\n    ranges:\n      blue: 10.100.1.0/24\n      blue: 10.100.2.0/24\n",
			[]string{`line 10: mapping key "blue" already defined at line 9`}},
		{"ranges equal", net1 + "hosts:\n  - {name: a, tunnel_ip: 192.0.2.1, ranges: {blue: 10.100.1.0/24}}\n" +
			"  - {name: b, tunnel_ip: 192.0.2.2, ranges: {blue: 10.100.1.0/24}}\n",
			[]string{`range blue: 10.100.1.0/24 overlaps 10.100.1.0/24 of host "`}},
		{"ranges nested", net1 + "hosts:\n  - {name: a, tunnel_ip: 192.0.2.1, ranges: {blue: 10.100.1.128/25}}\n" +
			"  - {name: b, tunnel_ip: 192.0.2.2, ranges: {blue: 10.100.0.0/23}}\n",
			[]string{`line 6: host "a" range blue: 10.100.1.128/25 overlaps 10.100.0.0/23 of host "b"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.file))
			if err == nil {
				t.Fatal("Parse accepted the file")
			}
			for _, frag := range tt.want {
				if !strings.Contains(err.Error(), frag) {
					t.Errorf("error lacks %q:\n%v", frag, err)
				}
			}
		})
	}
}

func TestParseReportsAllProblems(t *testing.T) {
	file := `networks:
  - {name: blue, vni: 0, subnet: 10.100.0.0/16}
  - {name: red, vni: 200, subnet: 10.200.1.0/16}
  - {name: red, vni: 200, subnet: 10.201.0.0/16}
hosts:
  - {name: a, tunnel_ip: 192.0.2.1, ranges: {green: 10.9.0.0/24, blue: 10.100.1.0/24}}
  - {name: b, tunnel_ip: 192.0.2.1, ranges: {blue: 10.100.1.0/25}}
`
	_, err := Parse([]byte(file))
	if err == nil {
		t.Fatal("Parse accepted the file")
	}
	want := []string{
		`line 2: network "blue": vni 0 is outside`,
		`line 3: network "red": subnet 10.200.1.0/16 is not canonical`,
		`line 4: network "red": duplicate network name (first at line 3)`,
		`line 4: network "red": vni 200 is also used by network "red"`,
		`line 6: host "a" range green: unknown network "green"`,
		`line 7: host "b": tunnel_ip 192.0.2.1 is also used by host "a"`,
		`line 7: host "b" range blue: 10.100.1.0/25 overlaps 10.100.1.0/24 of host "a"`,
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if i < len(lines) && !strings.HasPrefix(lines[i], w) {
			t.Errorf("problem %d = %q, want prefix %q", i, lines[i], w)
		}
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Line != 2 {
		t.Errorf("errors.As FieldError = %+v", fe)
	}
}

func TestParseEmptyIsErrEmpty(t *testing.T) {
	if _, err := Parse(nil); !errors.Is(err, ErrEmpty) {
		t.Fatalf("Parse(nil) = %v, want ErrEmpty", err)
	}
	v, err := Parse([]byte("networks: []\n"))
	if err != nil || len(v.Networks)+len(v.Hosts) != 0 {
		t.Fatalf(`Parse("networks: []") = %+v, %v`, v, err)
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadFile(filepath.Join(dir, "nope.yaml")); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("networks: [{name: x}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(bad); err == nil || !strings.Contains(err.Error(), bad+": line 1:") {
		t.Errorf("invalid file: %v", err)
	}
	if _, err := LoadFile("../../docs/cluster.example.yaml"); err != nil {
		t.Errorf("the documented example: %v", err)
	}
}

func TestValidateEndpoints(t *testing.T) {
	base, err := Parse([]byte(goodFile))
	if err != nil {
		t.Fatal(err)
	}
	mac := func(s string) []byte {
		m, err := net.ParseMAC(s)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	ep := func(net, ip, m, host string) RemoteEndpoint {
		return RemoteEndpoint{Network: net, IP: netip.MustParseAddr(ip), MAC: mac(m), Host: host}
	}
	good := ep("blue", "10.100.2.5", "02:00:00:00:00:01", "host-b")
	tests := []struct {
		name string
		eps  []RemoteEndpoint
		want string // "" for valid
	}{
		{"valid", []RemoteEndpoint{good}, ""},
		{"unknown network", []RemoteEndpoint{ep("green", "10.100.2.5", "02:00:00:00:00:01", "host-b")}, `unknown network "green"`},
		{"outside subnet", []RemoteEndpoint{ep("blue", "10.9.2.5", "02:00:00:00:00:01", "host-b")}, "ip is outside the network's subnet"},
		{"ipv6", []RemoteEndpoint{ep("blue", "fd00::1", "02:00:00:00:00:01", "host-b")}, "ip is not an IPv4 address"},
		{"multicast mac", []RemoteEndpoint{ep("blue", "10.100.2.5", "01:00:5e:00:00:01", "host-b")}, "is not a unicast 48-bit MAC"},
		{"zero mac", []RemoteEndpoint{ep("blue", "10.100.2.5", "00:00:00:00:00:00", "host-b")}, "is not a unicast 48-bit MAC"},
		{"unknown host", []RemoteEndpoint{ep("blue", "10.100.2.5", "02:00:00:00:00:01", "host-z")}, `unknown host "host-z"`},
		{"duplicate", []RemoteEndpoint{good, good}, "endpoints[1] (blue 10.100.2.5): duplicate of endpoints[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := base
			v.Endpoints = tt.eps
			err := Validate(v)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestValidateZeroValues(t *testing.T) {
	err := Validate(View{Networks: []Network{{Name: "blue"}}, Hosts: []Host{{Name: "a"}}})
	for _, frag := range []string{`network "blue": vni 0 is outside`, `network "blue": subnet is missing`, `host "a": tunnel_ip is missing`} {
		if err == nil || !strings.Contains(err.Error(), frag) {
			t.Errorf("Validate = %v, want %q", err, frag)
		}
	}
}
