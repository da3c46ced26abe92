package attach

import (
	"errors"
	"net/netip"
	"testing"
)

func TestRangeAllocator(t *testing.T) {
	r := RangeAllocator{
		"blue":  {Subnet: netip.MustParsePrefix("10.1.0.0/16"), Range: netip.MustParsePrefix("10.1.0.0/30"), Reserved: []netip.Addr{netip.MustParseAddr("10.1.0.1")}},
		"green": {Subnet: netip.MustParsePrefix("10.2.0.0/16"), Range: netip.MustParsePrefix("10.2.3.0/24")},
		"bad":   {Subnet: netip.MustParsePrefix("10.3.0.0/16"), Range: netip.MustParsePrefix("10.4.0.0/24")},
	}
	none := func(netip.Addr) bool { return false }
	set := func(ips ...string) func(netip.Addr) bool {
		m := map[netip.Addr]bool{}
		for _, s := range ips {
			m[netip.MustParseAddr(s)] = true
		}
		return func(a netip.Addr) bool { return m[a] }
	}
	cases := []struct {
		network string
		inUse   func(netip.Addr) bool
		want    string
		wantErr error
	}{
		{"blue", none, "10.1.0.2/16", nil},                      // .0 is the subnet address, .1 reserved
		{"blue", set("10.1.0.2"), "10.1.0.3/16", nil},           // in use skipped
		{"blue", set("10.1.0.2", "10.1.0.3"), "", ErrExhausted}, // range exhausted
		{"green", none, "10.2.3.0/16", nil},                     // not the subnet's network address
		{"green", set("10.2.3.0", "10.2.3.1"), "10.2.3.2/16", nil},
		{"red", none, "", errors.New("any")},
		{"bad", none, "", errors.New("any")},
	}
	for _, c := range cases {
		got, err := r.Next(c.network, c.inUse)
		switch {
		case c.wantErr == nil && (err != nil || got.String() != c.want):
			t.Errorf("Next(%s) = %v, %v; want %s", c.network, got, err, c.want)
		case c.wantErr == ErrExhausted && !errors.Is(err, ErrExhausted):
			t.Errorf("Next(%s) = %v, %v; want ErrExhausted", c.network, got, err)
		case c.wantErr != nil && err == nil:
			t.Errorf("Next(%s) = %v, want an error", c.network, got)
		}
	}
}

func TestRangeAllocatorLastBlock(t *testing.T) {
	// The broadcast address of the subnet is never handed out.
	r := RangeAllocator{"n": {Subnet: netip.MustParsePrefix("10.1.0.0/24"), Range: netip.MustParsePrefix("10.1.0.252/30")}}
	var got []string
	used := map[netip.Addr]bool{}
	for {
		p, err := r.Next("n", func(a netip.Addr) bool { return used[a] })
		if errors.Is(err, ErrExhausted) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		used[p.Addr()] = true
		got = append(got, p.String())
	}
	if len(got) != 3 || got[2] != "10.1.0.254/24" {
		t.Fatalf("allocated %v, want 10.1.0.252..254/24", got)
	}
}
