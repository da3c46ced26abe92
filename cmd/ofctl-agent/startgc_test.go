package main

import (
	"context"
	"io"
	"log/slog"
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
		closeReady bool // else ctx ends
	}{
		{"raised until ready", "", startGCPercent, true},
		{"raised until the context ends", "", startGCPercent, false},
		{"operator's GOGC kept", "150", 150, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const before = 150
			old := debug.SetGCPercent(before)
			t.Cleanup(func() { debug.SetGCPercent(old) })
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
		})
	}
}

// gcPercent reads GOGC (setting it back at once).
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}
