package netfilter

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func rangesText(rs []ipRange) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	return strings.Join(out, " ")
}

func TestRanges(t *testing.T) {
	cases := []struct {
		blocked, allowed []string
		want             string
	}{
		{nil, nil, ""},
		{[]string{"192.0.2.7/32"}, nil, "192.0.2.7"},
		{[]string{"192.0.2.0/25", "192.0.2.128/25"}, nil, "192.0.2.0/24"},         // adjacent: joined
		{[]string{"10.0.0.0/8", "10.1.0.0/16", "10.0.0.5/32"}, nil, "10.0.0.0/8"}, // contained
		{[]string{"192.0.2.0/24"}, []string{"192.0.2.128/25"}, "192.0.2.0/25"},    // hole at the end
		{[]string{"192.0.2.0/24"}, []string{"192.0.2.0/25"}, "192.0.2.128/25"},    // hole at the start
		{[]string{"192.0.2.0/24"}, []string{"192.0.2.5/32"}, "192.0.2.0-192.0.2.4 192.0.2.6-192.0.2.255"},
		{[]string{"192.0.2.0/24"}, []string{"192.0.0.0/16"}, ""}, // all allowed
		{[]string{"192.0.2.1/32", "198.51.100.1/32"}, []string{"198.51.100.0/24"}, "192.0.2.1"},
		{[]string{"0.0.0.0/0"}, []string{"10.0.0.0/8"}, "0.0.0.0-9.255.255.255 11.0.0.0-255.255.255.255"},
		{[]string{"255.255.255.255/32", "255.255.255.254/32"}, nil, "255.255.255.254/31"},
	}
	for _, c := range cases {
		got := rangesText(subtract(merge(prefixes(c.blocked...)), merge(prefixes(c.allowed...))))
		if got != c.want {
			t.Errorf("%v minus %v = %q, want %q", c.blocked, c.allowed, got, c.want)
		}
	}
}

func TestElements(t *testing.T) {
	es := elements(merge(prefixes("192.0.2.0/24", "255.255.255.0/24")))
	var got []string
	for _, e := range es {
		got = append(got, fmt.Sprintf("%v/%v", netip.AddrFrom4([4]byte(e.Key)), e.IntervalEnd))
	}
	// The last range reaches the end of the address space: no end element.
	if want := "192.0.2.0/false 192.0.3.0/true 255.255.255.0/false"; strings.Join(got, " ") != want {
		t.Errorf("elements %v, want %s", got, want)
	}
}
