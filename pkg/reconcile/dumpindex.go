package reconcile

import (
	"context"
	"hash/maphash"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
)

// A dump taken before the desired flows are known (an agent's start: the
// flows are dumped while OVSDB is read) can be hashed then, with no lock
// and off the start's critical path: IndexDump. SyncIndexed then compares
// each desired flow with it by one lookup, instead of decoding every dumped
// flow once the desired flows are there.

// DumpIndex is a flow dump hashed as the reconciler compares flows: each
// flow's key record, the hash of its content, and an index by key hash.
type DumpIndex struct {
	recs  []byte           // key records back to back
	off   []uint32         // flow j's record is recs[off[j]:off[j+1]]
	have  []uint64         // flow j's content hash
	first map[uint64]int32 // key hash -> a flow with it
	next  []int32          // the next flow with the same key hash, or -1
}

// Len is the number of flows indexed.
func (d *DumpIndex) Len() int { return len(d.have) }

// IndexDump hashes the flows dump gives (each called for every flow, as
// Switch.DumpFlows does). It takes no lock: it may run while the owners
// are being set.
func (r *Reconciler) IndexDump(dump func(each func(*flow.Stats) error) error) (*DumpIndex, error) {
	d := &DumpIndex{first: map[uint64]int32{}}
	err := dump(func(st *flow.Stats) error {
		start := len(d.recs)
		d.recs = appendKey(d.recs, st.Key())
		h := maphash.Bytes(r.seed, d.recs[start:])
		j := int32(len(d.have))
		d.off = append(d.off, uint32(start))
		d.have = append(d.have, r.hash(st.Content()))
		prev, ok := d.first[h]
		if !ok {
			prev = -1
		}
		d.next = append(d.next, prev)
		d.first[h] = j
		return nil
	})
	d.off = append(d.off, uint32(len(d.recs)))
	return d, err
}

// record is flow j's key record.
func (d *DumpIndex) record(j int32) []byte { return d.recs[d.off[j]:d.off[j+1]] }

// find returns the flow whose key record is rec (h its hash), or -1.
func (d *DumpIndex) find(h uint64, rec []byte) int32 {
	j, ok := d.first[h]
	for ok && j >= 0 {
		if string(d.record(j)) == string(rec) {
			return j
		}
		j = d.next[j]
	}
	return -1
}

// SyncIndexed is Sync comparing with d, a dump of every flow of our tables
// taken on the current connection (IndexDump), instead of asking the
// switch: the owners' flows are looked up in it and what no owner claims
// is deleted. d is consumed.
func (r *Reconciler) SyncIndexed(ctx context.Context, d *DumpIndex) (SyncResult, error) {
	return r.sync(ctx, d)
}

// compareIndex marks the slots d holds, as Sync's comparison of each
// dumped flow does, and returns the flows no owner holds (to delete).
func (r *Reconciler) compareIndex(d *DumpIndex, res *SyncResult) []flow.Key {
	if d.Len() > 0 { // OVS holds flows: the owners given with SetLater must be known to compare
		r.compileAllLater()
	}
	claimed := make([]bool, d.Len())
	for _, o := range r.owners {
		if o.isolated() {
			continue
		}
		for i := range o.slots {
			s := &o.slots[i]
			j := d.find(s.key, o.record(i))
			if j < 0 {
				continue
			}
			claimed[j] = true
			s.seen, s.installed, s.have = true, true, d.have[j]
			if s.have == s.want {
				res.Kept++
			} else {
				res.Modified++
			}
		}
	}
	var dels []flow.Key
	for j, c := range claimed {
		if !c { // stale or foreign
			dels = append(dels, decodeKey(d.record(int32(j))))
			res.Deleted++
		}
	}
	return dels
}
