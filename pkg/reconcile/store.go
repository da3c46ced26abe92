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
	slots []slot // sorted by key hash, unique
	keys  []byte // the key records, back to back
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

// dirty reports whether any slot waits for an add.
func (o *ownerFlows) dirty() bool {
	return slices.ContainsFunc(o.slots, func(s slot) bool { return !s.clean() })
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
	k   flow.Key
	rec []byte
	f   *flow.Flow
}

// keyedFlow computes the key record and both hashes of f.
func (r *Reconciler) keyedFlow(f *flow.Flow, buf []byte) keyed {
	k := f.Key()
	rec := appendKey(buf, k)
	return keyed{slot: slot{key: maphash.Bytes(r.seed, rec), want: r.hash(f.Content())}, k: k, rec: rec, f: f}
}

// compile turns an owner's flows into sorted, unique entries. Invalid
// flows, flows whose key another owner holds and the second flow of a key
// are refused with an error each.
func (r *Reconciler) compile(o *ownerFlows, flows []flow.Flow) ([]keyed, []error) {
	var errs []error
	out := make([]keyed, 0, len(flows))
	for i := range flows {
		f := &flows[i]
		e := r.keyedFlow(f, nil)
		if !o.has(e) { // a flow o already has passed Validate then
			if err := f.Validate(); err != nil {
				r.stats.Invalid++
				errs = append(errs, err)
				continue
			}
		}
		if holder := r.byKey[e.key]; holder != nil && holder != o {
			r.stats.Conflicts++
			errs = append(errs, r.conflict(f, holder, e))
			continue
		}
		out = append(out, e)
	}
	slices.SortStableFunc(out, func(a, b keyed) int { return cmp.Compare(a.key, b.key) })
	uniq := out[:0]
	for _, e := range out {
		if n := len(uniq); n > 0 && uniq[n-1].key == e.key {
			// The same key twice: the first flow wins, as in
			// pipeline.Build (and Regenerate finds it first).
			r.stats.Conflicts++
			if bytes.Equal(uniq[n-1].rec, e.rec) {
				errs = append(errs, &ConflictError{Flow: e.f.String(), Owner: o.name})
			} else {
				errs = append(errs, &HashCollisionError{Flow: e.f.String()})
			}
			continue
		}
		uniq = append(uniq, e)
	}
	return uniq, errs
}

// conflict describes why holder keeps the key of f.
func (r *Reconciler) conflict(f *flow.Flow, holder *ownerFlows, e keyed) error {
	if i := holder.find(e.key); i >= 0 && !bytes.Equal(holder.record(i), e.rec) {
		return &HashCollisionError{Flow: f.String()}
	}
	return &ConflictError{Flow: f.String(), Owner: holder.name}
}

// replace makes entries the flows of o: it carries what OVS holds over
// from the old slots, queues deletes for keys o no longer has, and indexes
// the new keys. It reports whether o has flows left.
func (r *Reconciler) replace(o *ownerFlows, entries []keyed) bool {
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
		}
		s := e.slot
		s.off = uint32(len(keys))
		keys = append(keys, e.rec...)
		if i < len(o.slots) && o.slots[i].key == e.key && !bytes.Equal(o.record(i), e.rec) {
			r.drop(o, i) // another key with the same hash: before indexing the new one
			i++
		}
		if i < len(o.slots) && o.slots[i].key == e.key {
			s.installed, s.have = o.slots[i].installed, o.slots[i].have
			i++
		} else {
			r.byKey[s.key] = o
			if have, ok := r.gone[e.k]; ok { // deleted by another owner, not yet flushed
				s.installed, s.have = true, have
				delete(r.gone, e.k)
			}
		}
		slots[j] = s
	}
	for ; i < len(o.slots); i++ {
		r.drop(o, i)
	}
	o.slots, o.keys = slots, keys
	return len(slots) > 0
}

// drop forgets slot i of o; a flow OVS may hold is queued for deletion.
func (r *Reconciler) drop(o *ownerFlows, i int) {
	s := o.slots[i]
	delete(r.byKey, s.key)
	if s.installed {
		r.gone[o.flowKey(i)] = s.have
	}
}

// ConflictError refuses a flow whose key another owner holds.
type ConflictError struct {
	Flow  string
	Owner Owner // who holds the key
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("flow %q: key already owned by %q", e.Flow, e.Owner)
}

// HashCollisionError refuses a flow whose key hashes like another key (64
// bits: about once in 10^9 tables of 200,000 flows).
type HashCollisionError struct{ Flow string }

func (e *HashCollisionError) Error() string {
	return fmt.Sprintf("flow %q: its key's hash collides with another flow's key", e.Flow)
}

// adds generates the add flow_mods of the slots of owners that OVS lacks,
// regenerating one owner at a time while the bundle is sent, so that the
// flows of a full install are never all in memory.
type adds struct {
	r      *Reconciler
	owners []*ownerFlows
	n      int // adds generated
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
			o.slots[j].sending = true
			a.n++
			if !yield(fm, nil) {
				return
			}
		}
	}
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
