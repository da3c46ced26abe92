package main

import (
	"context"
	"log/slog"
	"math"
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

// startMemoryCap bounds what startGCPercent costs in memory: while the
// agent starts with no memory limit of its own, the runtime gets this soft
// limit, so that the collector still runs before the heap reaches it. At
// 100k remote endpoints GOGC 400 alone took the start's peak RSS from
// 137-154 to 297-298 MiB; a cap of 160 MiB gave 167-172 MiB, this one 138
// MiB with the same convergence (bench/README.md, "The start's peak at
// 100k remote endpoints"). The peak is about the cap plus the binary's
// pages (~23 MiB): the live heap during the load is at most ~58 MB, the
// rest is garbage not yet collected. A lower cap makes the collector run
// more often during the load's ~600 MB of allocations, and it shows: 112
// MiB 2.9 s and 1.68x the floor, 100 MiB 6.1 s and 3.3x (one run each).
// A live heap larger than the cap makes the collector work harder for at
// most startGCMax (the runtime bounds its CPU), as at the default GOGC.
const startMemoryCap = 128 << 20

// startGCMax bounds how long the start's GOGC lasts if the agent is never
// ready.
const startGCMax = 10 * time.Second

// relaxGCUntilReady sets GOGC to startGCPercent, and the soft memory limit
// to startMemoryCap when none is set, until ready is closed (or
// startGCMax, or ctx ends), then both back to what they were; restored is
// closed once they are. An operator's GOGC environment variable leaves
// both alone.
func relaxGCUntilReady(ctx context.Context, ready <-chan struct{}, log *slog.Logger) (restored <-chan struct{}) {
	done := make(chan struct{})
	if _, ok := os.LookupEnv("GOGC"); ok {
		close(done)
		return done
	}
	old := debug.SetGCPercent(startGCPercent)
	capped := debug.SetMemoryLimit(-1) == math.MaxInt64
	if capped {
		debug.SetMemoryLimit(startMemoryCap)
	}
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
		if capped {
			debug.SetMemoryLimit(math.MaxInt64)
		}
		log.Debug("start's GOGC restored", "gogc", old, "memory_cap_lifted", capped)
	}()
	return done
}
