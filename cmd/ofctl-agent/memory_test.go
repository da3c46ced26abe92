package main

import (
	"io"
	"log/slog"
	"runtime/debug"
	"testing"

	"github.com/ofctl-agent/ofctl-agent/pkg/config"
)

// TestSetMemoryLimit: memory-limit becomes the runtime's soft limit, off
// leaves it alone, and the GOMEMLIMIT variable wins over the flag.
func TestSetMemoryLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := config.Default()
	for _, tt := range []struct {
		env, flag string
		want      int64
	}{
		{"", "96MiB", 96 << 20},
		{"", "off", 96 << 20}, // not changed
		{"200MiB", "64MiB", 96 << 20},
	} {
		if tt.env != "" {
			t.Setenv("GOMEMLIMIT", tt.env) // read by the runtime at start only: the limit stays
		}
		cfg.MemoryLimit = tt.flag
		if got := setMemoryLimit(cfg, log); got != tt.want || debug.SetMemoryLimit(-1) != tt.want {
			t.Errorf("env %q flag %q: limit %d, want %d", tt.env, tt.flag, got, tt.want)
		}
	}
}
