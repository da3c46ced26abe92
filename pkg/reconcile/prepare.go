package reconcile

import (
	"maps"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
)

// Compiling many owners given with SetLater (compileAllLater: a start with
// 10,000 local endpoints, OVS's dump waiting) is mostly work that depends
// on nothing shared: building each owner's flows, their key records and
// hashes, and validating them. prepareAll does that part in parallel on
// every CPU; compile then only looks the keys up and indexes them, in
// order, as before.

// prepared is an owner's flows keyed and validated ahead of compile.
type prepared struct {
	flows   []flow.Flow
	entries []keyed // entries[i] is flows[i]'s
	invalid []error // invalid[i] is flows[i]'s Validate error; nil: all valid
}

// prepareChunk is how many owners a worker of prepareAll takes at a time.
const prepareChunk = 128

// prepareAll regenerates, keys and validates the flows of owners, in
// parallel when there are many. It takes no lock: Regenerate must be safe
// for concurrent use (Config), and the rest reads only the seed.
func (r *Reconciler) prepareAll(owners []*ownerFlows) []*prepared {
	out := make([]*prepared, len(owners))
	workers := min(runtime.GOMAXPROCS(0), (len(owners)+prepareChunk-1)/prepareChunk)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				start := int(next.Add(prepareChunk)) - prepareChunk
				if start >= len(owners) {
					return
				}
				for i := start; i < min(start+prepareChunk, len(owners)); i++ {
					out[i] = r.prepare(r.cfg.Regenerate(owners[i].name))
				}
			}
		}()
	}
	wg.Wait()
	return out
}

// prepare keys and validates flows.
func (r *Reconciler) prepare(flows []flow.Flow) *prepared {
	p := &prepared{flows: flows, entries: make([]keyed, len(flows))}
	for i := range flows {
		p.entries[i] = r.keyedFlow(&flows[i], nil)
		if err := flows[i].Validate(); err != nil {
			if p.invalid == nil {
				p.invalid = make([]error, len(flows))
			}
			p.invalid[i] = err
		}
	}
	return p
}

// takePrepared returns r.pre if it was made for flows (the same slice),
// and forgets it either way.
func (r *Reconciler) takePrepared(flows []flow.Flow) *prepared {
	p := r.pre
	r.pre = nil
	if p == nil || len(p.flows) != len(flows) || len(flows) == 0 || &p.flows[0] != &flows[0] {
		return nil
	}
	return p
}

// at returns flow i's entry and validation error; ok is false without a
// preparation (p nil).
func (p *prepared) at(i int) (e keyed, invalid error, ok bool) {
	if p == nil {
		return keyed{}, nil, false
	}
	if p.invalid != nil {
		invalid = p.invalid[i]
	}
	return p.entries[i], invalid, true
}

// growKeys makes room in the key index for the prepared flows at once,
// rather than by doubling as they are indexed (10,000 owners: 50,000 keys).
func (r *Reconciler) growKeys(pre []*prepared) {
	n := 0
	for _, p := range pre {
		n += len(p.entries)
	}
	if n <= len(r.byKey) {
		return
	}
	grown := make(map[uint64]*ownerFlows, len(r.byKey)+n)
	maps.Copy(grown, r.byKey)
	r.byKey = grown
}
