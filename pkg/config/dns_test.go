package config

import (
	"fmt"
	"strings"
	"testing"
)

func TestDNSSettings(t *testing.T) {
	tests := []struct {
		args      []string
		upstreams string // UpstreamList as printed
		err       string // part of Load's error, "" for none
	}{
		{nil, "[]", ""},
		{[]string{"-dns-upstreams", "192.0.2.53, 192.0.2.54:5353"}, "[192.0.2.53:53 192.0.2.54:5353]", ""},
		{[]string{"-dns-upstreams", "resolver.example"}, "", `dns-upstreams "resolver.example"`},
		{[]string{"-dns-upstreams", "2001:db8::53"}, "", `dns-upstreams "2001:db8::53"`},
		{[]string{"-dns-upstreams", "192.0.2.53:0"}, "", `dns-upstreams "192.0.2.53:0"`},
		{[]string{"-dns-domain", "cluster.example."}, "[]", ""},
		{[]string{"-dns-domain", "bad_domain.example"}, "", `dns-domain "bad_domain.example"`},
		{[]string{"-dns-domain", ""}, "", `dns-domain ""`},
		{[]string{"-dns=false", "-dns-domain", "x..y"}, "", `dns-domain "x..y"`},
	}
	for _, tt := range tests {
		c, err := Load(append([]string{"-node-name", "h"}, tt.args...))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%v: error %v, want one naming %s", tt.args, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tt.args, err)
			continue
		}
		ups, _ := c.DNS.UpstreamList()
		if got := fmt.Sprint(ups); got != tt.upstreams || !c.DNS.Enabled {
			t.Errorf("%v: upstreams %s enabled %v, want %s enabled", tt.args, got, c.DNS.Enabled, tt.upstreams)
		}
	}
}
