package agent

import (
	"testing"
	"time"
)

// Only a change of bigChange flow_mods or more releases memory, and one
// release at a time runs.
func TestReleaserOnlyAfterLargeChanges(t *testing.T) {
	block := make(chan struct{})
	r := releaser{free: func() { <-block }}
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
