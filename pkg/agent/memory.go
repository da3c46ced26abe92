package agent

import (
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// bigChange is the number of flow_mods after which the agent hands the
// memory it no longer uses back to the OS at once (releaser).
const bigChange = 10000

// After smaller changes, memory is released once the agent has made no
// change for quietRelease, if the heap holds at least minGarbage of dead
// objects and free pages not returned to the OS, and a quarter of the live
// heap, and no release ran in the last releaseEvery.
const (
	quietRelease = 2 * time.Second
	minGarbage   = 16 << 20
	releaseEvery = 10 * time.Second
)

// releaser returns freed memory to the OS after a large change: loading
// a large cluster view and sending its flows leaves the Go heap's peak
// (about twice the live heap with GOGC=100) mapped, and the runtime's
// background scavenger gives it back over minutes. debug.FreeOSMemory
// (a full GC and a scavenge, ~0.1 s of CPU at 100k remote endpoints) runs
// in the background, at most one at a time. Small changes never pay it
// while they come: the garbage they leave (up to the live heap's size
// before the collector runs) is released once they stop (quietRelease),
// so that an agent between changes holds about its live heap.
type releaser struct {
	running atomic.Bool
	count   atomic.Uint64 // releases done (tests)
	free    func()        // debug.FreeOSMemory; a seam for tests
	// heap returns the unused and live bytes of the heap (runtime/metrics);
	// quiet and every replace quietRelease and releaseEvery: seams for tests.
	heap         func() (garbage, live uint64)
	quiet, every time.Duration

	mu    sync.Mutex
	timer *time.Timer // fires quiet after the last small change
	last  time.Time   // the last release started
}

// after notes a change of n flow_mods.
func (r *releaser) after(n int) {
	switch {
	case n >= bigChange:
		r.release()
	case n > 0:
		r.arm()
	}
}

// arm (re)starts the wait for a quiet moment.
func (r *releaser) arm() {
	quiet := r.quiet
	if quiet <= 0 {
		quiet = quietRelease
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.timer == nil {
		r.timer = time.AfterFunc(quiet, r.onQuiet)
		return
	}
	r.timer.Reset(quiet)
}

// onQuiet releases memory when enough garbage is left, at most once per
// releaseEvery: too soon after the last release, it waits for the rest of
// that time.
func (r *releaser) onQuiet() {
	heap, every := r.heap, r.every
	if heap == nil {
		heap = heapUnused
	}
	if every <= 0 {
		every = releaseEvery
	}
	unused, live := heap()
	if unused < max(minGarbage, live/4) {
		return
	}
	r.mu.Lock()
	if wait := every - time.Since(r.last); !r.last.IsZero() && wait > 0 {
		r.timer.Reset(wait)
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	r.release()
}

// release runs debug.FreeOSMemory in the background unless one runs.
func (r *releaser) release() {
	if !r.running.CompareAndSwap(false, true) {
		return
	}
	r.mu.Lock()
	r.last = time.Now()
	r.mu.Unlock()
	go func() {
		defer r.running.Store(false)
		if r.free != nil {
			r.free()
		} else {
			debug.FreeOSMemory()
		}
		r.count.Add(1)
	}()
}

// heapUnused reads what the heap holds without using it, the dead objects
// not yet collected plus the free pages not returned to the OS, and its
// live bytes as of the last collection.
func heapUnused() (unused, live uint64) {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/heap/free:bytes"}}
	metrics.Read(s)
	for _, v := range s {
		if v.Value.Kind() != metrics.KindUint64 {
			return 0, 0
		}
	}
	objects, live, free := s[0].Value.Uint64(), s[1].Value.Uint64(), s[2].Value.Uint64()
	return free + objects - min(objects, live), live
}
