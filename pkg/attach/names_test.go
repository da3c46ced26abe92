package attach

import (
	"strings"
	"testing"
)

func TestHostIfName(t *testing.T) {
	ids := []string{"0123456789abcdef", "/var/run/netns/a", "/proc/1/ns/net", strings.Repeat("x", 200), ""}
	ifnames := []string{"eth0", "eth1", "net1"}
	seen := map[string]string{}
	for _, id := range ids {
		for _, ifn := range ifnames {
			h := HostIfName(id, ifn)
			if len(h) > maxIfNameLen {
				t.Errorf("(%q,%q): name %q longer than %d", id, ifn, h, maxIfNameLen)
			}
			if err := validIfName(h); err != nil {
				t.Errorf("(%q,%q): %v", id, ifn, err)
			}
			if h != HostIfName(id, ifn) {
				t.Errorf("(%q,%q): name not stable", id, ifn)
			}
			if !strings.HasPrefix(h, "of") || !strings.HasSuffix(h, "_l") {
				t.Errorf("(%q,%q): host %q is not of..._l", id, ifn, h)
			}
			if prev, dup := seen[h]; dup {
				t.Errorf("(%q,%q): name %q also used by %s", id, ifn, h, prev)
			}
			seen[h] = id + "/" + ifn
		}
	}
	// The id and ifname are separated in the hash: ("ab","c") != ("a","bc").
	if HostIfName("ab", "c") == HostIfName("a", "bc") {
		t.Error("HostIfName ambiguous across the id/ifname boundary")
	}
}

func TestValidIfName(t *testing.T) {
	cases := []struct {
		name string
		ok   bool
	}{
		{"eth1", true}, {"a", true}, {"123456789012345", true},
		{"", false}, {"1234567890123456", false}, {".", false}, {"..", false},
		{"a/b", false}, {"a:b", false}, {"a b", false}, {"a\tb", false},
	}
	for _, c := range cases {
		if err := validIfName(c.name); (err == nil) != c.ok {
			t.Errorf("validIfName(%q) = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}
