package agent

import (
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"testing"
	"time"
)

// Only a change of bigChange flow_mods or more releases memory, and one
// release at a time runs.
func TestReleaserOnlyAfterLargeChanges(t *testing.T) {
	block := make(chan struct{})
	r := releaser{free: func() { <-block }, heap: func() (uint64, uint64) { return 0, 0 }} // no garbage: no quiet release
	for _, n := range []int{0, 1, 5, bigChange - 1} {
		r.after(n)
	}
	if r.running.Load() {
		t.Fatal("a small change started a release")
	}
	r.after(bigChange)
	if !r.running.Load() {
		t.Fatal("a large change started no release")
	}
	r.after(2 * bigChange) // one is running: skipped
	close(block)
	deadline := time.Now().Add(10 * time.Second)
	for r.running.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := r.count.Load(); got != 1 {
		t.Fatalf("%d releases, want 1", got)
	}
	r.free = nil // the real one
	r.after(bigChange)
	for r.count.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if r.count.Load() != 2 {
		t.Fatal("debug.FreeOSMemory never returned")
	}
}

// After small changes, memory is released once they stop for the quiet
// time, only with enough garbage, and not again within the minimum
// interval, but once it has passed.
func TestReleaserQuietAfterSmallChanges(t *testing.T) {
	var garbage atomic.Uint64
	r := releaser{free: func() {}, quiet: 300 * time.Millisecond, every: 3 * time.Second,
		heap: func() (uint64, uint64) { return garbage.Load(), 40 << 20 }}
	waitCount := func(want uint64, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for r.count.Load() < want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got := r.count.Load(); got != want {
			t.Fatalf("%d releases, want %d", got, want)
		}
	}
	garbage.Store(8 << 20) // under minGarbage
	r.after(3)
	time.Sleep(time.Second)
	waitCount(0, 0)
	garbage.Store(32 << 20)
	for range 10 { // changes keep coming: no release meanwhile
		r.after(3)
		time.Sleep(10 * time.Millisecond)
	}
	if r.count.Load() != 0 {
		t.Fatal("a release ran while changes kept coming")
	}
	waitCount(1, 10*time.Second)
	released := time.Now()
	r.after(3) // quiet again within every of the last release: it waits
	time.Sleep(time.Second)
	if r.count.Load() != 1 && time.Since(released) < r.every {
		t.Fatal("released again within the minimum interval")
	}
	waitCount(2, 10*time.Second)
}

// heapUnused reads the runtime's figures: garbage left by an allocation
// shows until a collection.
func TestHeapUnused(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // no collection meanwhile
	runtime.GC()
	_, live := heapUnused()
	if live == 0 {
		t.Fatal("no live heap")
	}
	for range 64 {
		sink = make([]byte, 1<<20)
	}
	if unused, _ := heapUnused(); unused < 16<<20 {
		t.Errorf("unused %d after 64 MiB of short-lived allocations", unused)
	}
}

var sink []byte
