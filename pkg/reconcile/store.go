package reconcile

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"iter"
	"slices"
	"strings"

	"github.com/contiv/libOpenflow/openflow13"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
)

// The store keeps, per flow, two 64-bit hashes and the bytes of its key,
// not the flow: at 200,000 flows a map keyed by flow.Key plus the owners'
// key lists cost ~60 MB, this ~15 MB. Flows are regenerated from the owner
// (Config.Regenerate) when flow_mods must be built.

// slot is one desired flow of an owner.
type slot struct {
	key       uint64 // hash of the flow's key record (see appendKey)
	want      uint64 // hash of the desired content (cookie, instructions)
	have      uint64 // hash of the content OVS holds, when installed
	off       uint32 // where the key record starts in ownerFlows.keys
	installed bool   // OVS holds a flow with this key (content: have)
	seen      bool   // found by the running Sync's dump
	sending   bool   // its add is in the bundle being committed
}

// clean reports whether OVS already holds the desired flow.
func (s *slot) clean() bool { return s.installed && s.have == s.want }

// ownerFlows is what the reconciler keeps of one owner's flows.
type ownerFlows struct {
	name  Owner
	rank  int    // Config.Rank of name: the lower wins a key
	slots []slot // sorted by key hash, unique: the keys it holds
	keys  []byte // the key records, back to back
	// waits are its flows whose key a stronger owner holds (sorted by key
	// hash): one is installed when that owner lets the key go (promote).
	waits []wait
	fail  *failure // the switch refused one of its flows (failure.go)
	// refused counts the flows of its last Set that were dropped (invalid,
	// a colliding or repeated key): neither held nor waiting.
	refused int
	// later: given with SetLater, its flows not compiled yet (no slots).
	later bool
}

// waitsFor reports whether o waits with e's flow: the same key and content.
func (o *ownerFlows) waitsFor(e keyed) bool {
	i := o.findWait(e.key)
	return i >= 0 && o.waits[i].want == e.want && bytes.Equal(o.waits[i].rec, e.rec)
}

// wait is a flow waiting for its key.
type wait struct {
	key, want uint64
	rec       []byte
}

// findWait returns the index of o's wait for key hash h, or -1.
func (o *ownerFlows) findWait(h uint64) int {
	i, ok := slices.BinarySearchFunc(o.waits, h, func(w wait, h uint64) int { return cmp.Compare(w.key, h) })
	if !ok {
		return -1
	}
	return i
}

// find returns the index of the slot with key hash h, or -1.
func (o *ownerFlows) find(h uint64) int {
	i, ok := slices.BinarySearchFunc(o.slots, h, func(s slot, h uint64) int { return cmp.Compare(s.key, h) })
	if !ok {
		return -1
	}
	return i
}

// record returns slot i's key record.
func (o *ownerFlows) record(i int) []byte {
	b := o.keys[o.slots[i].off:]
	return b[:keyHeader+int(binary.BigEndian.Uint16(b[3:5]))]
}

// flowKey returns slot i's key.
func (o *ownerFlows) flowKey(i int) flow.Key { return decodeKey(o.record(i)) }

// index returns the index of the slot whose key record is rec (h its
// hash), or -1: the hash finds the slot, the record rules out a collision.
func (o *ownerFlows) index(h uint64, rec []byte) int {
	if i := o.find(h); i >= 0 && bytes.Equal(o.record(i), rec) {
		return i
	}
	return -1
}

// has reports whether o has e's flow: the same key and content.
func (o *ownerFlows) has(e keyed) bool {
	i := o.index(e.key, e.rec)
	return i >= 0 && o.slots[i].want == e.want
}

// byName orders owners by name (bundles list owners in a stable order).
func byName(a, b *ownerFlows) int { return strings.Compare(string(a.name), string(b.name)) }

// outranks reports whether a wins a key over b: the lower rank, then the
// lower name. The order is total, so the same owners give the same winner
// whatever the order of their Sets (a restart does not change it).
func outranks(a, b *ownerFlows) bool {
	if a.rank != b.rank {
		return a.rank < b.rank
	}
	return a.name < b.name
}

// queueDirty returns those of owners that need adds, sorted by name, and
// marks them pending until a commit succeeds.
func (r *Reconciler) queueDirty(owners iter.Seq[*ownerFlows]) []*ownerFlows {
	var out []*ownerFlows
	for o := range owners {
		if o.dirty() {
			out = append(out, o)
			r.todo[o] = struct{}{}
		}
	}
	slices.SortFunc(out, byName)
	return out
}

// dirty reports whether any slot waits for an add (none does while the
// owner is isolated).
func (o *ownerFlows) dirty() bool {
	return o.later || !o.isolated() && slices.ContainsFunc(o.slots, func(s slot) bool { return !s.clean() })
}

// keyHeader is the size of a key record before the match: table (1),
// priority (2), match length (2).
const keyHeader = 5

// appendKey appends k's record to b: table, priority, match length, match.
func appendKey(b []byte, k flow.Key) []byte {
	b = append(b, k.Table)
	b = binary.BigEndian.AppendUint16(b, k.Priority)
	b = binary.BigEndian.AppendUint16(b, uint16(len(k.Match)))
	return append(b, k.Match...)
}

func decodeKey(rec []byte) flow.Key {
	return flow.Key{Table: rec[0], Priority: binary.BigEndian.Uint16(rec[1:3]), Match: string(rec[keyHeader:])}
}

// keyed is a flow being compiled into a slot.
type keyed struct {
	slot
	k       flow.Key
	rec     []byte
	f       *flow.Flow
	content flow.Content
	from    *ownerFlows // a weaker owner holding the key: it yields it
	pos     int         // the flow's position in the owner's flows
}

// keyedFlow computes the key record and both hashes of f.
func (r *Reconciler) keyedFlow(f *flow.Flow, buf []byte) keyed {
	k := f.Key()
	rec := appendKey(buf, k)
	c := f.Content()
	return keyed{slot: slot{key: maphash.Bytes(r.seed, rec), want: r.hash(c)}, k: k, rec: rec, f: f, content: c}
}

// compile turns an owner's flows into sorted, unique entries: the keys o
// holds or takes from a weaker holder (held) and the keys a stronger owner
// holds (waits). Invalid flows, hash collisions and the second flow of a
// key are refused; a flow that starts waiting or takes a key is reported
// too (a conflict, once: not again while it keeps waiting).
func (r *Reconciler) compile(o *ownerFlows, flows []flow.Flow) (held, waits []keyed, errs []error) {
	pre := r.takePrepared(flows) // keyed and validated already (prepare.go)?
	held = make([]keyed, 0, len(flows))
	for i := range flows {
		f := &flows[i]
		e, invalid, ok := pre.at(i)
		if !ok {
			e = r.keyedFlow(f, nil)
		}
		e.pos = i
		if !o.has(e) && !o.waitsFor(e) { // a flow o already has passed Validate then
			if !ok {
				invalid = f.Validate()
			}
			if err := invalid; err != nil {
				r.stats.Invalid++
				errs = append(errs, err)
				continue
			}
		}
		holder := r.byKey[e.key]
		switch {
		case holder == nil || holder == o:
			held = append(held, e)
		case !bytes.Equal(holder.record(holder.find(e.key)), e.rec):
			r.stats.Conflicts++
			errs = append(errs, &HashCollisionError{Flow: f.String()})
		case outranks(o, holder):
			r.stats.Conflicts++
			errs = append(errs, &ConflictError{Flow: f.String(), Owner: holder.name, Taken: true})
			e.from = holder
			held = append(held, e)
		default:
			if !o.waitsFor(e) {
				r.stats.Conflicts++
				errs = append(errs, &ConflictError{Flow: f.String(), Owner: holder.name})
			}
			waits = append(waits, e)
		}
	}
	return r.uniq(o, held, &errs), r.uniq(o, waits, &errs), errs
}

// uniq sorts entries by key hash and keeps the first flow of each key, as
// pipeline.Build does (and Regenerate finds it first); the others are
// refused.
func (r *Reconciler) uniq(o *ownerFlows, entries []keyed, errs *[]error) []keyed {
	// Stable by position: the first flow of a key comes first. (A stable
	// sort moves these large entries many more times.)
	slices.SortFunc(entries, func(a, b keyed) int { return cmp.Or(cmp.Compare(a.key, b.key), cmp.Compare(a.pos, b.pos)) })
	out := entries[:0]
	for _, e := range entries {
		if n := len(out); n > 0 && out[n-1].key == e.key {
			r.stats.Conflicts++
			if bytes.Equal(out[n-1].rec, e.rec) {
				*errs = append(*errs, &ConflictError{Flow: e.f.String(), Owner: o.name, Twice: true})
			} else {
				*errs = append(*errs, &HashCollisionError{Flow: e.f.String()})
			}
			continue
		}
		out = append(out, e)
	}
	return out
}

// replace makes entries the flows of o and waits its waiting flows: it
// carries what OVS holds over from the old slots, takes keys from weaker
// holders, releases the keys o no longer has (to a waiting owner, or
// queued for deletion), and indexes the new keys. It reports whether o
// has flows left and whether they changed.
func (r *Reconciler) replace(o *ownerFlows, entries, waits []keyed) (left, changed bool) {
	changed = r.setWaits(o, waits) || len(entries) != len(o.slots)
	slots := make([]slot, len(entries))
	size := 0
	for _, e := range entries {
		size += len(e.rec)
	}
	keys := make([]byte, 0, size)
	i := 0 // walks o.slots, sorted like entries
	for j, e := range entries {
		for ; i < len(o.slots) && o.slots[i].key < e.key; i++ {
			r.drop(o, i)
			changed = true
		}
		s := e.slot
		s.off = uint32(len(keys))
		keys = append(keys, e.rec...)
		if i < len(o.slots) && o.slots[i].key == e.key && !bytes.Equal(o.record(i), e.rec) {
			// Another key with the same hash: forget it before indexing
			// the new one (owners waiting for it wait for o's new key).
			r.release(o, i, false)
			i++
		}
		switch {
		case i < len(o.slots) && o.slots[i].key == e.key:
			s.installed, s.have = o.slots[i].installed, o.slots[i].have
			changed = changed || s.want != o.slots[i].want
			i++
		case e.from != nil:
			s.installed, s.have = r.yield(e.from, e.key)
			r.byKey[s.key] = o
			r.keepOut(o, &s, e.k)
			changed = true
		default:
			r.byKey[s.key] = o
			if have, ok := r.gone[e.k]; ok && !o.isolated() && !r.fresh { // deleted by another owner, not yet flushed
				s.installed, s.have = true, have
				delete(r.gone, e.k)
			}
			changed = true
		}
		slots[j] = s
	}
	for ; i < len(o.slots); i++ {
		r.drop(o, i)
		changed = true
	}
	o.slots, o.keys = slots, keys
	return len(slots)+len(o.waits) > 0, changed
}

// drop forgets slot i of o and releases its key: to the strongest owner
// waiting for it, or, if none, a flow OVS may hold is queued for deletion.
func (r *Reconciler) drop(o *ownerFlows, i int) { r.release(o, i, true) }

// release is drop; handOver false queues the deletion even if owners wait.
func (r *Reconciler) release(o *ownerFlows, i int, handOver bool) {
	s := o.slots[i]
	if w := r.nextWaiter(s.key); w != nil && handOver {
		r.promote(w, s.key, s.installed, s.have)
		return
	}
	delete(r.byKey, s.key)
	if s.installed {
		r.gone[o.flowKey(i)] = s.have
	}
}

// setWaits makes waits the waiting flows of o and reports whether they
// changed.
func (r *Reconciler) setWaits(o *ownerFlows, waits []keyed) bool {
	changed := len(waits) != len(o.waits)
	for i, w := range o.waits {
		if !changed {
			changed = w.key != waits[i].key || w.want != waits[i].want
		}
		r.unwait(o, w.key)
	}
	o.waits = make([]wait, len(waits))
	for i, e := range waits {
		o.waits[i] = wait{key: e.key, want: e.want, rec: e.rec}
		r.waiters[e.key] = append(r.waiters[e.key], o)
	}
	return changed
}

// unwait removes o from the owners waiting for key hash h.
func (r *Reconciler) unwait(o *ownerFlows, h uint64) {
	ws := slices.DeleteFunc(r.waiters[h], func(w *ownerFlows) bool { return w == o })
	if len(ws) == 0 {
		delete(r.waiters, h)
		return
	}
	r.waiters[h] = ws
}

// nextWaiter is the strongest owner waiting for key hash h, or nil.
func (r *Reconciler) nextWaiter(h uint64) *ownerFlows {
	var best *ownerFlows
	for _, w := range r.waiters[h] {
		if best == nil || outranks(w, best) {
			best = w
		}
	}
	return best
}

// promote gives w the key h it waited for; what OVS holds for the key
// (installed, have) carries over, so a flow_mod is sent only if w's flow
// differs.
func (r *Reconciler) promote(w *ownerFlows, h uint64, installed bool, have uint64) {
	j := w.findWait(h)
	wt := w.waits[j]
	w.waits = slices.Delete(w.waits, j, j+1)
	r.unwait(w, h)
	s := slot{key: h, want: wt.want, installed: installed, have: have, off: uint32(len(w.keys))}
	r.keepOut(w, &s, decodeKey(wt.rec))
	w.keys = append(w.keys, wt.rec...)
	i, _ := slices.BinarySearchFunc(w.slots, h, func(s slot, h uint64) int { return cmp.Compare(s.key, h) })
	w.slots = slices.Insert(w.slots, i, s)
	r.byKey[h] = w
	if w.dirty() {
		r.todo[w] = struct{}{}
	}
}

// keepOut queues the deletion of the flow OVS holds for slot s, with key
// k, that isolated owner o just got: none of o's flows stays in OVS.
func (r *Reconciler) keepOut(o *ownerFlows, s *slot, k flow.Key) {
	if o.isolated() && s.installed {
		r.gone[k] = s.have
		s.installed = false
	}
}

// yield makes h, the weaker holder of key hash k, wait for it; it returns
// what OVS holds for the key.
func (r *Reconciler) yield(h *ownerFlows, k uint64) (installed bool, have uint64) {
	i := h.find(k)
	s := h.slots[i]
	wt := wait{key: k, want: s.want, rec: bytes.Clone(h.record(i))}
	j, _ := slices.BinarySearchFunc(h.waits, k, func(w wait, k uint64) int { return cmp.Compare(w.key, k) })
	h.waits = slices.Insert(h.waits, j, wt)
	h.slots = slices.Delete(h.slots, i, i+1)
	r.waiters[k] = append(r.waiters[k], h)
	return s.installed, s.have
}

// ConflictError reports a flow whose key another owner also wants. The
// flow waits (it is installed when Owner lets the key go), or, with
// Taken, it outranks Owner and took the key (Owner's flow waits).
type ConflictError struct {
	Flow  string
	Owner Owner // who holds the key (Taken: who held it)
	Taken bool
	Twice bool // Owner gave the key twice: its first flow is kept, this one dropped
}

func (e *ConflictError) Error() string {
	switch {
	case e.Twice:
		return fmt.Sprintf("flow %q: %q gives its key twice: the first flow is kept", e.Flow, e.Owner)
	case e.Taken:
		return fmt.Sprintf("flow %q: key taken from %q, whose flow waits", e.Flow, e.Owner)
	}
	return fmt.Sprintf("flow %q: key already owned by %q: waiting for it", e.Flow, e.Owner)
}

// HashCollisionError refuses a flow whose key hashes like another key (64
// bits: about once in 10^9 tables of 200,000 flows).
type HashCollisionError struct{ Flow string }

func (e *HashCollisionError) Error() string {
	return fmt.Sprintf("flow %q: its key's hash collides with another flow's key", e.Flow)
}

// adds generates the add flow_mods of the slots of owners that OVS lacks,
// regenerating one owner at a time while the bundle is sent, so that the
// flows of a full install are never all in memory. Isolated owners send
// nothing. It records which slot each add came from (4 bytes per add, and
// one run per owner) so that a flow_mod the switch refuses is traced back
// to its owner.
type adds struct {
	r      *Reconciler
	owners []*ownerFlows
	n      int     // adds generated
	runs   []run   // where each owner's adds start
	slots  []int32 // the slot of each add, in its owner
}

// run is the first add of an owner.
type run struct {
	start int
	o     *ownerFlows
}

func (r *Reconciler) newAdds(owners []*ownerFlows) *adds { return &adds{r: r, owners: owners} }

// mods yields the adds of the regenerated flows. When the owner changed
// since its last Set, that Set is on the way: a slot whose flow is no
// longer generated is skipped (the Set removes it), and a flow whose
// content changed is sent as it is now (the Set finds it installed with
// the old hash and sends it once more).
func (a *adds) mods(yield func(*openflow13.FlowMod, error) bool) {
	var buf []byte
	for _, o := range a.owners {
		if o.later { // built once: compiled here, then sent
			if !a.compiled(o, a.r.compileLater(o, a.r.cfg.Regenerate(o.name)), yield) {
				return
			}
			continue
		}
		if !o.dirty() {
			continue
		}
		flows := a.r.cfg.Regenerate(o.name)
		for i := range flows {
			f := &flows[i]
			buf = appendKey(buf[:0], f.Key())
			j := o.index(maphash.Bytes(a.r.seed, buf), buf)
			if j < 0 || o.slots[j].clean() || o.slots[j].sending {
				continue
			}
			fm, err := f.FlowMod(openflow13.FC_ADD)
			if err != nil {
				yield(nil, fmt.Errorf("encode %q: %w", f.String(), err))
				return
			}
			// The slot keeps the content hash of the last Set: if the
			// owner changed since, its Set is on the way and fixes it.
			if !a.add(o, j, fm, yield) {
				return
			}
		}
	}
}

// compiled yields the adds of o, an owner given with SetLater that was
// just compiled: held are its entries, slot by slot (replace), validated,
// their contents computed. It reports whether to go on.
func (a *adds) compiled(o *ownerFlows, held []keyed, yield func(*openflow13.FlowMod, error) bool) bool {
	if !o.dirty() || len(held) != len(o.slots) {
		return true // gone, or nothing to send
	}
	for j := range held {
		if s := &o.slots[j]; s.clean() || s.sending {
			continue
		}
		fm, err := held[j].f.AddFlowMod(held[j].content)
		if err != nil {
			yield(nil, fmt.Errorf("encode %q: %w", held[j].f.String(), err))
			return false
		}
		if !a.add(o, j, fm, yield) {
			return false
		}
	}
	return true
}

// add records the add of o's slot j and yields it.
func (a *adds) add(o *ownerFlows, j int, fm *openflow13.FlowMod, yield func(*openflow13.FlowMod, error) bool) bool {
	o.slots[j].sending = true
	if n := len(a.runs); n == 0 || a.runs[n-1].o != o {
		a.runs = append(a.runs, run{start: a.n, o: o})
	}
	a.slots = append(a.slots, int32(j))
	a.n++
	return yield(fm, nil)
}

// at returns the owner and slot of add number i, or nil.
func (a *adds) at(i int) (*ownerFlows, int) {
	if i < 0 || i >= len(a.slots) {
		return nil, -1
	}
	k, found := slices.BinarySearchFunc(a.runs, i, func(r run, i int) int { return cmp.Compare(r.start, i) })
	if !found {
		k--
	}
	return a.runs[k].o, int(a.slots[i])
}

// settle records the outcome of the commit: on success the adds sent are
// installed.
func (a *adds) settle(ok bool) {
	for _, o := range a.owners {
		for i := range o.slots {
			if s := &o.slots[i]; s.sending {
				s.sending = false
				if ok {
					s.installed, s.have = true, s.want
				}
			}
		}
	}
}
