package cluster

import (
	"net/netip"
	"testing"
)

func TestRangeIndexHolder(t *testing.T) {
	pfx := netip.MustParsePrefix
	x := NewRangeIndex([]Host{
		{Name: "b", Ranges: map[string]netip.Prefix{"blue": pfx("10.100.2.0/24"), "red": pfx("10.200.0.0/25")}},
		{Name: "a", Ranges: map[string]netip.Prefix{"blue": pfx("10.100.1.0/24")}},
		{Name: "c", Ranges: map[string]netip.Prefix{"blue": pfx("10.100.4.0/22")}},
		{Name: "gw"},
	})
	cases := []struct {
		network, ip, host, r string
	}{
		{"blue", "10.100.1.0", "a", "10.100.1.0/24"},
		{"blue", "10.100.1.255", "a", "10.100.1.0/24"},
		{"blue", "10.100.2.7", "b", "10.100.2.0/24"},
		{"blue", "10.100.7.255", "c", "10.100.4.0/22"},
		{"blue", "10.100.3.1", "", ""}, // between ranges
		{"blue", "10.100.0.9", "", ""}, // before the first
		{"blue", "10.100.8.0", "", ""}, // after the last
		{"red", "10.200.0.127", "b", "10.200.0.0/25"},
		{"red", "10.200.0.128", "", ""},
		{"green", "10.100.1.5", "", ""},
	}
	for _, c := range cases {
		host, r, ok := x.Holder(c.network, netip.MustParseAddr(c.ip))
		if host != c.host || ok != (c.host != "") || (ok && r.String() != c.r) {
			t.Errorf("Holder(%s, %s) = %q %v %v, want %q %s", c.network, c.ip, host, r, ok, c.host, c.r)
		}
	}
	if !x.Equal(NewRangeIndex([]Host{{Name: "a", Ranges: map[string]netip.Prefix{"blue": pfx("10.100.1.0/24")}},
		{Name: "c", Ranges: map[string]netip.Prefix{"blue": pfx("10.100.4.0/22")}},
		{Name: "b", Ranges: map[string]netip.Prefix{"blue": pfx("10.100.2.0/24"), "red": pfx("10.200.0.0/25")}}})) {
		t.Error("the same ranges in another order are not Equal")
	}
	if x.Equal(NewRangeIndex(nil)) || !NewRangeIndex(nil).Equal(RangeIndex{}) {
		t.Error("Equal of empty indexes")
	}
}
