package agent

import (
	"runtime/debug"
	"sync/atomic"
)

// bigChange is the number of flow_mods after which the agent hands the
// memory it no longer uses back to the OS (releaseMemory).
const bigChange = 10000

// releaser returns freed memory to the OS after a large change: loading
// a large cluster view and sending its flows leaves the Go heap's peak
// (about twice the live heap with GOGC=100) mapped, and the runtime's
// background scavenger gives it back over minutes. debug.FreeOSMemory
// (a full GC and a scavenge, ~0.1 s of CPU at 100k remote endpoints) runs
// in the background, at most one at a time; small changes never pay it.
type releaser struct {
	running atomic.Bool
	count   atomic.Uint64 // releases done (tests)
	free    func()        // debug.FreeOSMemory; a seam for tests
}

// after notes a change of n flow_mods.
func (r *releaser) after(n int) {
	if n < bigChange || !r.running.CompareAndSwap(false, true) {
		return
	}
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
