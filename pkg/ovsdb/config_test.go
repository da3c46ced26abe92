package ovsdb

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestDeriveHWAddr(t *testing.T) {
	a := DeriveHWAddr("node-a", "br-int")
	if len(a) != 6 {
		t.Fatalf("len %d", len(a))
	}
	if a[0]&0x02 == 0 || a[0]&0x01 != 0 {
		t.Errorf("%s: want locally administered unicast", a)
	}
	if b := DeriveHWAddr("node-a", "br-int"); b.String() != a.String() {
		t.Errorf("not stable: %s vs %s", a, b)
	}
	for _, other := range []net.HardwareAddr{DeriveHWAddr("node-b", "br-int"), DeriveHWAddr("node-a", "br-ex"), DeriveHWAddr("node-a/br", "int")} {
		if other.String() == a.String() {
			t.Errorf("%s collides with %s", other, a)
		}
	}
	// Changing the result must not change the next one (no shared backing array).
	a[5]++
	if DeriveHWAddr("node-a", "br-int").String() == a.String() {
		t.Error("derived MAC shares memory")
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{Endpoint: "unix:/x", NodeName: "n1"}.withDefaults()
	if c.Bridge.Name != "br-int" || c.Bridge.DatapathType != "system" {
		t.Errorf("bridge defaults: %+v", c.Bridge)
	}
	if c.Bridge.HWAddr.String() != DeriveHWAddr("n1", "br-int").String() {
		t.Errorf("hwaddr %s not derived", c.Bridge.HWAddr)
	}
	if c.ConnectTimeout <= 0 || c.MinBackoff <= 0 || c.MaxBackoff < c.MinBackoff || c.ProbeInterval <= 0 || c.Logger == nil {
		t.Errorf("timing defaults: %+v", c)
	}
	if err := c.validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	tests := []struct {
		name string
		mod  func(*Config)
		ok   bool
	}{
		{"ok unix", func(*Config) {}, true},
		{"ok tcp", func(c *Config) { c.Endpoint = "tcp:127.0.0.1:6640" }, true},
		{"no endpoint", func(c *Config) { c.Endpoint = "" }, false},
		{"bad scheme", func(c *Config) { c.Endpoint = "/var/run/db.sock" }, false},
		{"multicast mac", func(c *Config) { c.Bridge.HWAddr = mac("01:00:5e:00:00:01") }, false},
		{"long mac", func(c *Config) { c.Bridge.HWAddr = mac("02:00:00:00:00:00:00:01") }, false},
		{"long bridge name", func(c *Config) { c.Bridge.Name = "br-int-0123456789" }, false},
		{"slash in name", func(c *Config) { c.Bridge.Name = "br/int" }, false},
		{"backoff inverted", func(c *Config) { c.MinBackoff, c.MaxBackoff = time.Second, time.Millisecond }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Endpoint: "unix:/run/db.sock"}.withDefaults()
			tc.mod(&c)
			err := c.validate()
			if (err == nil) != tc.ok {
				t.Fatalf("validate = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %v does not wrap ErrInvalidConfig", err)
			}
		})
	}
}

func TestSpecValidate(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{"port ok", PortSpec{Name: "veth1", ExternalIDs: map[string]string{"a": "b"}}.validate()},
		{"port internal", PortSpec{Name: "p0", Type: "internal", OFPortRequest: 65279}.validate()},
		{"tunnel ok", TunnelSpec{Name: "gre0", OFPort: 10, LocalIP: netip.MustParseAddr("192.0.2.1")}.validate()},
	}
	for _, tc := range tests {
		if tc.err != nil {
			t.Errorf("%s: %v", tc.name, tc.err)
		}
	}
	bad := []struct {
		name string
		err  error
	}{
		{"port no name", PortSpec{}.validate()},
		{"port gre type", PortSpec{Name: "x", Type: "gre"}.validate()},
		{"port ofport high", PortSpec{Name: "x", OFPortRequest: 65280}.validate()},
		{"port ofport negative", PortSpec{Name: "x", OFPortRequest: -1}.validate()},
		{"tunnel no ofport", TunnelSpec{Name: "gre0"}.validate()},
		{"tunnel ipv6", TunnelSpec{Name: "gre0", OFPort: 1, LocalIP: netip.MustParseAddr("2001:db8::1")}.validate()},
	}
	for _, tc := range bad {
		if !errors.Is(tc.err, ErrInvalidConfig) {
			t.Errorf("%s: got %v, want ErrInvalidConfig", tc.name, tc.err)
		}
	}
}

func TestBackoffDelay(t *testing.T) {
	minD, maxD := 100*time.Millisecond, time.Second
	tests := []struct {
		n    int
		want time.Duration
	}{
		{1, 100 * time.Millisecond}, {2, 200 * time.Millisecond}, {3, 400 * time.Millisecond},
		{4, 800 * time.Millisecond}, {5, time.Second}, {100, time.Second},
	}
	for _, tc := range tests {
		if got := backoffDelay(tc.n, minD, maxD); got != tc.want {
			t.Errorf("backoffDelay(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}
