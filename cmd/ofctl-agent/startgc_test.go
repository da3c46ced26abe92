package main

import (
	"context"
	"io"
	"log/slog"
	"math"
	"runtime/debug"
	"testing"
	"time"
)

// relaxGCUntilReady raises GOGC until ready and puts it back after; an
// operator's GOGC is left alone.
func TestRelaxGCUntilReady(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	tests := []struct {
		name       string
		env        string // GOGC environment variable; "" unset
		wantDuring int
		closeReady bool  // else ctx ends
		limit      int64 // the memory limit before; math.MaxInt64: none
		wantLimit  int64 // during the start
	}{
		{"raised until ready", "", startGCPercent, true, math.MaxInt64, startMemoryCap},
		{"raised until the context ends", "", startGCPercent, false, math.MaxInt64, startMemoryCap},
		{"operator's GOGC kept", "150", 150, true, math.MaxInt64, math.MaxInt64},
		{"operator's memory limit kept", "", startGCPercent, true, 1 << 30, 1 << 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const before = 150
			old := debug.SetGCPercent(before)
			oldLimit := debug.SetMemoryLimit(tt.limit)
			t.Cleanup(func() { debug.SetGCPercent(old); debug.SetMemoryLimit(oldLimit) })
			if tt.env != "" {
				t.Setenv("GOGC", tt.env)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ready := make(chan struct{})
			restored := relaxGCUntilReady(ctx, ready, quiet)
			if got := gcPercent(); got != tt.wantDuring {
				t.Fatalf("GOGC during the start = %d, want %d", got, tt.wantDuring)
			}
			if got := debug.SetMemoryLimit(-1); got != tt.wantLimit {
				t.Fatalf("memory limit during the start = %d, want %d", got, tt.wantLimit)
			}
			if tt.closeReady {
				close(ready)
			} else {
				cancel()
			}
			select {
			case <-restored:
			case <-time.After(10 * time.Second):
				t.Fatal("GOGC not restored 10 s after ready")
			}
			if got := gcPercent(); got != before {
				t.Errorf("GOGC after the start = %d, want %d", got, before)
			}
			if got := debug.SetMemoryLimit(-1); got != tt.limit {
				t.Errorf("memory limit after the start = %d, want %d", got, tt.limit)
			}
		})
	}
}

// gcPercent reads GOGC (setting it back at once).
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}
