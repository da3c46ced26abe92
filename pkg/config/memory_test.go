package config

import (
	"strings"
	"testing"
)

func TestMemoryLimitBytes(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"", 0, true},
		{"off", 0, true},
		{"0", 0, true},
		{"1048576", 1 << 20, true},
		{"512B", 512, true},
		{"64KiB", 64 << 10, true},
		{"96MiB", 96 << 20, true},
		{"2GiB", 2 << 30, true},
		{"1TiB", 1 << 40, true},
		{"96MB", 0, false}, // GOMEMLIMIT has no decimal units
		{"-1", 0, false},
		{"MiB", 0, false},
		{"1.5GiB", 0, false},
		{"99999999TiB", 0, false},
	} {
		c := Default()
		c.MemoryLimit = tt.in
		got, err := c.MemoryLimitBytes()
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("%q: %d, %v; want %d (ok %v)", tt.in, got, err, tt.want, tt.ok)
		}
		if verr := c.Validate(); tt.ok != (verr == nil || !strings.Contains(verr.Error(), "memory-limit")) {
			t.Errorf("%q: Validate: %v", tt.in, verr)
		}
	}
}
