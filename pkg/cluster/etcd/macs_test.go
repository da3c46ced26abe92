package etcd

import (
	"slices"
	"testing"
)

// TestMacIndex: groups of one live in one map, larger groups in the
// other, and members move between them as they grow and shrink.
func TestMacIndex(t *testing.T) {
	mk := macKey{net: 1, mac: [6]byte{2, 0, 0, 0, 0, 1}}
	a, b, c := ipKey{1, [4]byte{10, 0, 0, 1}}, ipKey{1, [4]byte{10, 0, 0, 2}}, ipKey{1, [4]byte{10, 0, 0, 3}}
	type step struct {
		add    bool
		id     ipKey
		size   int     // returned by add or remove
		member []ipKey // members after the step
		inMore bool    // the group is in the map of larger groups
	}
	steps := []step{
		{true, a, 1, []ipKey{a}, false},
		{true, b, 2, []ipKey{a, b}, true},
		{true, c, 3, []ipKey{a, b, c}, true},
		{false, a, 2, []ipKey{b, c}, true},
		{false, c, 1, []ipKey{b}, false},
		{false, a, 1, []ipKey{b}, false}, // not a member: nothing changes
		{false, b, 0, nil, false},
	}
	m := newMacIndex(0)
	for i, s := range steps {
		var n int
		if s.add {
			n = m.add(mk, s.id)
		} else {
			n = m.remove(mk, s.id)
		}
		_, inMore := m.more[mk]
		if got := m.members(mk); n != s.size || m.size(mk) != s.size || !slices.Equal(got, s.member) || inMore != s.inMore {
			t.Fatalf("step %d: size %d/%d members %v in more %v, want %d %v %v", i, n, m.size(mk), got, inMore, s.size, s.member, s.inMore)
		}
	}
	if len(m.one)+len(m.more) != 0 {
		t.Fatalf("empty index holds %d + %d groups", len(m.one), len(m.more))
	}
}
