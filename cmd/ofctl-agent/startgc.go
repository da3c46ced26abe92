package main

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"time"
)

// startGCPercent is the garbage collector's GOGC while the agent starts: a
// new process's heap grows from nothing to its size at 10,000 endpoints
// (~70 MiB live) during the start, and at the default 100 the collector
// runs every time it doubles, on the cores the start needs (AgentDaemon,
// 2 runs each: the first Sync 0.10-0.12 s -> 0.07-0.10 s, ready 1.27 and
// 1.20x the floor -> 1.13 and 1.11x; peak RSS about the same, 207-212 MiB,
// as the memory is given back after ready).
const startGCPercent = 400

// startGCMax bounds how long the start's GOGC lasts if the agent is never
// ready.
const startGCMax = 10 * time.Second

// relaxGCUntilReady sets GOGC to startGCPercent until ready is closed (or
// startGCMax, or ctx ends), then back to what it was; restored is closed
// once it is. An operator's GOGC environment variable is left alone.
func relaxGCUntilReady(ctx context.Context, ready <-chan struct{}, log *slog.Logger) (restored <-chan struct{}) {
	done := make(chan struct{})
	if _, ok := os.LookupEnv("GOGC"); ok {
		close(done)
		return done
	}
	old := debug.SetGCPercent(startGCPercent)
	go func() {
		defer close(done)
		t := time.NewTimer(startGCMax)
		defer t.Stop()
		select {
		case <-ready:
		case <-t.C:
		case <-ctx.Done():
		}
		debug.SetGCPercent(old)
		log.Debug("start's GOGC restored", "gogc", old)
	}()
	return done
}
