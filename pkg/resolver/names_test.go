package resolver

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestTableSetDelete(t *testing.T) {
	tb := NewTable()
	steps := []struct {
		do        func() error
		web       []string // addresses of "web" in blue, sorted
		reverse10 []string // names of 10.0.0.10
	}{
		{func() error { return tb.Set("blue", Record{"e1", "Web", ip("10.0.0.10")}) }, []string{"10.0.0.10"}, []string{"web"}},
		{func() error { return tb.Set("blue", Record{"e2", "web", ip("10.0.0.11")}) }, []string{"10.0.0.10", "10.0.0.11"}, []string{"web"}},
		// same endpoint, same record: nothing changes
		{func() error { return tb.Set("blue", Record{"e1", "web", ip("10.0.0.10")}) }, []string{"10.0.0.10", "10.0.0.11"}, []string{"web"}},
		// e1 renamed: web keeps e2 only, 10.0.0.10 is now db
		{func() error { return tb.Set("blue", Record{"e1", "db", ip("10.0.0.10")}) }, []string{"10.0.0.11"}, []string{"db"}},
		// an invalid name is refused and e1 keeps its record
		{func() error { return tb.Set("blue", Record{"e1", "bad_name", ip("10.0.0.10")}) }, []string{"10.0.0.11"}, []string{"db"}},
		// a second endpoint with the same name and address: one address, one name
		{func() error { return tb.Set("blue", Record{"e3", "db", ip("10.0.0.10")}) }, []string{"10.0.0.11"}, []string{"db"}},
		{func() error { tb.Delete("blue", "e1"); return nil }, []string{"10.0.0.11"}, []string{"db"}},
		{func() error { tb.Delete("blue", "e3"); return nil }, []string{"10.0.0.11"}, nil},
		{func() error { tb.Delete("blue", "e2"); tb.Delete("blue", "unknown"); return nil }, nil, nil},
	}
	for i, st := range steps {
		err := st.do()
		if i == 4 {
			if !errors.Is(err, ErrInvalidName) {
				t.Fatalf("step %d: err %v, want ErrInvalidName", i, err)
			}
		} else if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		var web []string
		for _, a := range tb.lookup("blue", "web", nil) {
			web = append(web, a.String())
		}
		slices.Sort(web)
		if rev := tb.reverse("blue", ip("10.0.0.10"), nil); !slices.Equal(web, st.web) || !slices.Equal(rev, st.reverse10) {
			t.Errorf("step %d: web %v, reverse %v; want %v, %v", i, web, rev, st.web, st.reverse10)
		}
		if got := tb.lookup("red", "web", nil); len(got) != 0 {
			t.Errorf("step %d: red sees blue's web: %v", i, got)
		}
	}
	if n := tb.Len("blue"); n != 0 {
		t.Errorf("blue has %d names left", n)
	}
}

func TestTableRejects(t *testing.T) {
	tb := NewTable()
	for _, r := range []Record{{"", "web", ip("10.0.0.1")}, {"e", "web", netip.Addr{}}, {"e", "web", ip("fd00::1")}} {
		if err := tb.Set("blue", r); err == nil {
			t.Errorf("Set(%+v) accepted", r)
		}
	}
}

func TestTableRotation(t *testing.T) {
	tb := NewTable()
	for i := range 3 {
		if err := tb.Set("blue", Record{fmt.Sprint(i), "web", netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)})}); err != nil {
			t.Fatal(err)
		}
	}
	firsts := map[netip.Addr]int{}
	for range 30 {
		got := tb.lookup("blue", "web", nil)
		if len(got) != 3 {
			t.Fatalf("lookup = %v, want 3 addresses", got)
		}
		firsts[got[0]]++
	}
	for a, n := range firsts {
		if n != 10 {
			t.Errorf("%v first %d times in 30, want 10 (rotation)", a, n)
		}
	}
}

func TestTableLongListDeduplicated(t *testing.T) {
	tb := NewTable()
	for i := range 40 { // two endpoints per address
		if err := tb.Set("blue", Record{fmt.Sprint(i), "web", netip.AddrFrom4([4]byte{10, 0, 0, byte(i/2 + 1)})}); err != nil {
			t.Fatal(err)
		}
	}
	if got := tb.lookup("blue", "web", nil); len(got) != 20 {
		t.Errorf("lookup returned %d addresses, want 20 distinct", len(got))
	}
	if l := tb.List("blue"); len(l) != 1 || len(l[0].Addrs) != 20 {
		t.Errorf("List = %v", l)
	}
}

func TestTableReplace(t *testing.T) {
	tb := NewTable()
	_ = tb.Set("blue", Record{"a", "old", ip("10.0.0.1")})
	_ = tb.Set("blue", Record{"b", "keep", ip("10.0.0.2")})
	err := tb.Replace("blue", []Record{
		{"b", "keep", ip("10.0.0.2")},
		{"c", "new", ip("10.0.0.3")},
		{"d", "bad.name", ip("10.0.0.4")},
	})
	if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), "endpoint d") {
		t.Errorf("Replace error %v, want endpoint d's invalid name", err)
	}
	var names []string
	for _, n := range tb.List("blue") {
		names = append(names, n.Name)
	}
	if !slices.Equal(names, []string{"keep", "new"}) {
		t.Errorf("after Replace: %v, want [keep new]", names)
	}
	if got := tb.Networks(); !slices.Equal(got, []string{"blue"}) {
		t.Errorf("Networks() = %v", got)
	}
}

func TestParseReverse(t *testing.T) {
	tests := []struct {
		name string
		want string // "" invalid
	}{
		{"5.0.100.10.in-addr.arpa.", "10.100.0.5"},
		{"255.255.255.255.in-addr.arpa.", "255.255.255.255"},
		{"0.100.10.in-addr.arpa.", ""},
		{"1.5.0.100.10.in-addr.arpa.", ""},
		{"256.0.100.10.in-addr.arpa.", ""},
		{"05.0.100.10.in-addr.arpa.", ""},
		{"x.0.100.10.in-addr.arpa.", ""},
		{"-1.0.100.10.in-addr.arpa.", ""},
		{".0.100.10.in-addr.arpa.", ""},
	}
	for _, tt := range tests {
		a, ok := parseReverse(tt.name)
		if got := map[bool]string{true: a.String(), false: ""}[ok]; got != tt.want {
			t.Errorf("parseReverse(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestParseResolvConf(t *testing.T) {
	in := "# comment\nsearch example.org\nnameserver 192.0.2.53\noptions ndots:2\nnameserver fd00::53\nnameserver\n"
	got, err := parseResolvConf(strings.NewReader(in))
	want := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.53:53"), netip.MustParseAddrPort("[fd00::53]:53")}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("parseResolvConf = %v, %v; want %v", got, err, want)
	}
	if _, err := parseResolvConf(strings.NewReader("nameserver resolver.example\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("a host name as nameserver: err %v, want a line 1 error", err)
	}
}
