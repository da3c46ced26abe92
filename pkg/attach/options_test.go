package attach

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
)

func TestOptionsNormalize(t *testing.T) {
	base := func() Options {
		return Options{Network: "blue", Subnet: netip.MustParsePrefix("10.1.0.0/16"), IP: netip.MustParsePrefix("10.1.2.3/16")}
	}
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	cases := []struct {
		name  string
		edit  func(*Options)
		field string // "" = valid
	}{
		{"defaults", func(*Options) {}, ""},
		{"no ip (allocated later)", func(o *Options) { o.IP = netip.Prefix{} }, ""},
		{"gateway on subnet", func(o *Options) { o.Gateway = netip.MustParseAddr("10.1.0.1") }, ""},
		{"explicit mac", func(o *Options) { o.MAC = mac("02:00:00:00:00:01") }, ""},
		{"/32 without gateway", func(o *Options) { o.Subnet = netip.Prefix{}; o.IP = netip.MustParsePrefix("10.9.9.9/32") }, ""},
		{"mtu min", func(o *Options) { o.MTU = 68 }, ""},
		{"mtu max", func(o *Options) { o.MTU = 65535 }, ""},
		{"empty network", func(o *Options) { o.Network = "" }, "network"},
		{"network with space", func(o *Options) { o.Network = "a b" }, "network"},
		{"ifname too long", func(o *Options) { o.IfName = "a234567890123456" }, "ifname"},
		{"ifname slash", func(o *Options) { o.IfName = "a/b" }, "ifname"},
		{"mtu too small", func(o *Options) { o.MTU = 67 }, "mtu"},
		{"mtu negative", func(o *Options) { o.MTU = -1 }, "mtu"},
		{"mtu too large", func(o *Options) { o.MTU = 65536 }, "mtu"},
		{"ipv6 ip", func(o *Options) { o.Subnet = netip.Prefix{}; o.IP = netip.MustParsePrefix("fd00::1/64") }, "ip"},
		{"multicast ip", func(o *Options) { o.Subnet = netip.Prefix{}; o.IP = netip.MustParsePrefix("224.0.0.1/24") }, "ip"},
		{"unspecified ip", func(o *Options) { o.Subnet = netip.Prefix{}; o.IP = netip.MustParsePrefix("0.0.0.0/8") }, "ip"},
		{"network address", func(o *Options) { o.IP = netip.MustParsePrefix("10.1.0.0/16") }, "ip"},
		{"broadcast address", func(o *Options) { o.IP = netip.MustParsePrefix("10.1.255.255/16") }, "ip"},
		{"ip outside network", func(o *Options) { o.IP = netip.MustParsePrefix("10.2.0.5/16") }, "ip"},
		{"prefix wider than network", func(o *Options) { o.IP = netip.MustParsePrefix("10.1.2.3/8") }, "ip"},
		{"prefix narrower than network", func(o *Options) { o.IP = netip.MustParsePrefix("10.1.2.3/24") }, "ip"},
		{"prefix length 0", func(o *Options) { o.Subnet = netip.Prefix{}; o.IP = netip.MustParsePrefix("10.1.2.3/0") }, "ip"},
		{"subnet not masked", func(o *Options) { o.Subnet = netip.MustParsePrefix("10.1.0.1/16") }, "subnet"},
		{"multicast mac", func(o *Options) { o.MAC = mac("01:00:5e:00:00:01") }, "mac"},
		{"zero mac", func(o *Options) { o.MAC = mac("00:00:00:00:00:00") }, "mac"},
		{"long mac", func(o *Options) { o.MAC = mac("02:00:00:00:00:00:00:01") }, "mac"},
		{"gateway off subnet", func(o *Options) { o.Gateway = netip.MustParseAddr("10.2.0.1") }, "gateway"},
		{"gateway is own ip", func(o *Options) { o.Gateway = netip.MustParseAddr("10.1.2.3") }, "gateway"},
		{"gateway ipv6", func(o *Options) { o.Gateway = netip.MustParseAddr("fd00::1") }, "gateway"},
		{"gateway broadcast", func(o *Options) { o.Gateway = netip.MustParseAddr("255.255.255.255") }, "gateway"},
		{"tx offload off", func(o *Options) { o.TxOffload = TxOffloadOff }, ""},
		{"tx offload unknown", func(o *Options) { o.TxOffload = "OFF" }, "tx-offload"},
		{"published ports", func(o *Options) {
			o.Ports = []endpoint.Published{{Proto: "tcp", HostPort: 8080, Port: 80}, {Proto: "udp", HostPort: 8080, Port: 53}}
		}, ""},
		{"published host port twice", func(o *Options) {
			o.Ports = []endpoint.Published{{Proto: "tcp", HostPort: 8080, Port: 80}, {Proto: "tcp", HostPort: 8080, Port: 81}}
		}, "publish"},
		{"published port 0", func(o *Options) { o.Ports = []endpoint.Published{{Proto: "tcp", HostPort: 8080}} }, "publish"},
		{"published sctp", func(o *Options) { o.Ports = []endpoint.Published{{Proto: "sctp", HostPort: 8080, Port: 80}} }, "publish"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := base()
			c.edit(&o)
			got, err := o.normalize()
			var oe *OptionError
			switch {
			case c.field == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.field != "" && (!errors.As(err, &oe) || oe.Field != c.field):
				t.Fatalf("got %v, want an OptionError on %s", err, c.field)
			case c.field == "" && (got.IfName == "" || got.MTU == 0 || got.TxOffload == ""):
				t.Fatalf("defaults not filled in: %+v", got)
			}
		})
	}
}

func TestOptionsDefaults(t *testing.T) {
	o, err := Options{Network: "n", IP: netip.MustParsePrefix("10.0.0.5/24")}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	if o.IfName != "eth1" || o.MTU != 1450 {
		t.Fatalf("defaults: ifname %q mtu %d, want eth1 1450", o.IfName, o.MTU)
	}
}

func TestMACDerivation(t *testing.T) {
	cases := []struct {
		ip, mac, want string
	}{
		{"10.1.2.3/16", "", "0a:58:0a:01:02:03"},
		{"192.168.255.254/24", "", "0a:58:c0:a8:ff:fe"},
		{"10.1.2.3/16", "02:11:22:33:44:55", "02:11:22:33:44:55"},
	}
	for _, c := range cases {
		o := Options{IP: netip.MustParsePrefix(c.ip)}
		if c.mac != "" {
			o.MAC, _ = net.ParseMAC(c.mac)
		}
		if got := o.mac().String(); got != c.want {
			t.Errorf("mac for ip %s mac %q = %s, want %s", c.ip, c.mac, got, c.want)
		}
		if m := o.mac(); m[0]&1 != 0 || m[0]&2 == 0 && c.mac == "" {
			t.Errorf("derived mac %s not locally administered unicast", m)
		}
	}
}

func TestLastAddr(t *testing.T) {
	cases := map[string]string{"10.1.0.0/16": "10.1.255.255", "10.1.2.3/24": "10.1.2.255", "10.0.0.1/32": "10.0.0.1", "0.0.0.0/0": "255.255.255.255"}
	for p, want := range cases {
		if got := lastAddr(netip.MustParsePrefix(p)).String(); got != want {
			t.Errorf("lastAddr(%s) = %s, want %s", p, got, want)
		}
	}
}
