package reconcile

import (
	"context"
	"fmt"
	"hash/maphash"
	"maps"
	"slices"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
)

// ScopedSwitch is a Switch that can read one table's flows with one cookie
// (OVS then walks its cookie index: the cost is the flows returned, not
// the table).
type ScopedSwitch interface {
	Switch
	// DumpScope calls each for every flow of table whose cookie is exactly
	// cookie, as DumpFlows does; tables the agent does not own have none.
	DumpScope(ctx context.Context, table uint8, cookie uint64, each func(*flow.Stats) error) error
}

// Scope is a part of the switch to repair after a change reported by OVS
// (a flow monitor update): the flows of Table whose cookie is Cookie, and
// the flows with Keys, which the change concerned. A deleted flow is no
// longer found by cookie: its key, from the report, is how SyncScopes
// learns that a desired flow is missing.
type Scope struct {
	Table  uint8
	Cookie uint64
	Keys   []flow.Key
}

// SyncScopes is Sync restricted to scopes, for drift that OVS reported:
// it reads only the flows of each scope's table and cookie, and commits in
// one bundle what makes them right: desired flows that are missing or
// different are added again (every flow of their owners in the scope's
// table and cookie is checked, reported or not), other flows are deleted
// (foreign ones included). Pending changes of the owners concerned are
// folded in. The cost is proportional to the flows in the scopes.
//
// It needs a ScopedSwitch; with another Switch it returns an error.
func (r *Reconciler) SyncScopes(ctx context.Context, scopes []Scope) (SyncResult, error) {
	sw, ok := r.cfg.Switch.(ScopedSwitch)
	if !ok {
		return SyncResult{}, fmt.Errorf("scoped sync: %T cannot dump by table and cookie", r.cfg.Switch)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	start := time.Now()
	r.compileAllLater() // the scopes' flows are compared with every owner's
	p := &scopePlan{r: r, owners: map[*ownerFlows]struct{}{}}
	for _, s := range scopes {
		if err := p.scan(ctx, sw, s); err != nil {
			return SyncResult{}, fmt.Errorf("scoped sync of table %d cookie %#x: %w", s.Table, s.Cookie, err)
		}
	}
	owners := r.queueDirty(maps.Keys(p.owners))
	slices.SortFunc(p.dels, flow.CompareKeys)
	p.dels = slices.CompactFunc(p.dels, func(a, b flow.Key) bool { return a == b })
	res := p.res
	res.Deleted = len(p.dels)
	sent := p.dels
	if len(p.dels)+len(owners) > 0 {
		_, err := r.commit(ctx, func(isolated []flow.Key) []flow.Key {
			sent = slices.SortedFunc(slices.Values(append(slices.Clip(p.dels), isolated...)), flow.CompareKeys)
			return sent
		}, owners)
		if err != nil {
			return res, err
		}
	}
	for _, k := range sent {
		delete(r.gone, k)
	}
	for _, o := range owners {
		if !o.dirty() {
			delete(r.todo, o)
		}
	}
	r.stats.ScopeSyncs++
	r.stats.Repairs += uint64(res.Changed())
	res.Duration = time.Since(start)
	return res, nil
}

// scopePlan collects what SyncScopes found (reconciler lock held).
type scopePlan struct {
	r      *Reconciler
	res    SyncResult
	dels   []flow.Key               // flows to delete: in a scope, desired by nobody
	owners map[*ownerFlows]struct{} // owners whose flows were checked
}

// scan reads one scope from the switch and compares it with the desired
// flows: it records the state of the slots it sees and the flows to
// delete, then checks the flows in the scope of the owners concerned.
func (p *scopePlan) scan(ctx context.Context, sw ScopedSwitch, s Scope) error {
	sc := &scopeScan{seen: map[uint64]bool{}, owners: map[*ownerFlows]struct{}{}}
	err := sw.DumpScope(ctx, s.Table, s.Cookie, func(st *flow.Stats) error {
		p.found(sc, st)
		return nil
	})
	if err != nil {
		return err
	}
	p.reported(sc, s)
	for o := range sc.owners {
		p.checkOwner(o, s, sc.seen)
		p.owners[o] = struct{}{}
	}
	return nil
}

// scopeScan is what the scan of one scope found.
type scopeScan struct {
	seen   map[uint64]bool // key hashes of desired flows found (or counted missing)
	owners map[*ownerFlows]struct{}
	buf    []byte
}

// found records one flow of the scope's dump.
func (p *scopePlan) found(sc *scopeScan, st *flow.Stats) {
	k := st.Key()
	sc.buf = appendKey(sc.buf[:0], k)
	o, i := p.r.slotOf(sc.buf)
	if o == nil || o.isolated() {
		p.dels = append(p.dels, k) // foreign, stale, or isolated (failure.go)
		return
	}
	sl := &o.slots[i]
	sc.seen[sl.key] = true
	sl.installed, sl.have = true, p.r.hash(st.Content())
	if sl.have == sl.want {
		p.res.Kept++
	} else {
		p.res.Modified++
	}
	sc.owners[o] = struct{}{}
}

// reported handles the flows the report named: a desired one the dump did
// not return is missing; a pending delete of one is done.
func (p *scopePlan) reported(sc *scopeScan, s Scope) {
	for _, k := range s.Keys {
		if k.Table != s.Table {
			continue // the dump cannot tell
		}
		sc.buf = appendKey(sc.buf[:0], k)
		o, i := p.r.slotOf(sc.buf)
		if o == nil {
			delete(p.r.gone, k)
			continue
		}
		if o.isolated() {
			o.slots[i].installed = false // as it should be
			continue
		}
		sc.owners[o] = struct{}{}
		if sl := &o.slots[i]; !sc.seen[sl.key] {
			p.missing(sl)
			sc.seen[sl.key] = true
		}
	}
}

// checkOwner marks missing the flows of o in the scope's table and cookie
// that the dump did not return (the report named one flow; the others of
// its owner may be gone too).
func (p *scopePlan) checkOwner(o *ownerFlows, s Scope, seen map[uint64]bool) {
	var buf []byte
	for _, f := range p.r.cfg.Regenerate(o.name) {
		if f.Table != s.Table || f.Cookie != s.Cookie {
			continue
		}
		buf = appendKey(buf[:0], f.Key())
		i := o.index(maphash.Bytes(p.r.seed, buf), buf)
		if i < 0 || seen[o.slots[i].key] {
			continue // not (or no longer) held by o, or already accounted
		}
		p.missing(&o.slots[i])
	}
}

// missing marks a desired flow absent from the switch. Only one we
// believed installed counts as a repair (a pending add is just sent).
func (p *scopePlan) missing(sl *slot) {
	if sl.installed {
		p.res.Added++
	}
	sl.installed = false
}

// slotOf returns the owner and slot index of the desired flow whose key
// record is rec, or nil.
func (r *Reconciler) slotOf(rec []byte) (*ownerFlows, int) {
	h := maphash.Bytes(r.seed, rec)
	o := r.byKey[h]
	if o == nil {
		return nil, -1
	}
	if i := o.index(h, rec); i >= 0 {
		return o, i
	}
	return nil, -1
}
