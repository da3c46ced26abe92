package etcd

import "slices"

// macIndex lists, per MAC of a network, the IPs whose winning claim uses
// it. Almost every MAC has one IP: those groups are one map entry of 20
// bytes (one), not a slice per MAC; groups of two or more (conflicts)
// are in more, every member there.
type macIndex struct {
	one  map[macKey]ipKey
	more map[macKey][]ipKey
}

func newMacIndex(n int) macIndex {
	return macIndex{one: make(map[macKey]ipKey, n), more: map[macKey][]ipKey{}}
}

// add puts id in mk's group and returns the group's size.
func (m *macIndex) add(mk macKey, id ipKey) int {
	if ids, ok := m.more[mk]; ok {
		m.more[mk] = append(ids, id)
		return len(ids) + 1
	}
	if first, ok := m.one[mk]; ok {
		delete(m.one, mk)
		m.more[mk] = []ipKey{first, id}
		return 2
	}
	m.one[mk] = id
	return 1
}

// remove takes id out of mk's group and returns how many remain.
func (m *macIndex) remove(mk macKey, id ipKey) int {
	if ids, ok := m.more[mk]; ok {
		if i := slices.Index(ids, id); i >= 0 {
			ids = slices.Delete(ids, i, i+1)
		}
		switch len(ids) {
		case 0:
			delete(m.more, mk)
		case 1:
			delete(m.more, mk)
			m.one[mk] = ids[0]
		default:
			m.more[mk] = ids
		}
		return len(ids)
	}
	if first, ok := m.one[mk]; ok && first == id {
		delete(m.one, mk)
		return 0
	}
	return m.size(mk)
}

// size is the number of IPs in mk's group.
func (m *macIndex) size(mk macKey) int {
	if ids, ok := m.more[mk]; ok {
		return len(ids)
	}
	if _, ok := m.one[mk]; ok {
		return 1
	}
	return 0
}

// members returns the IPs of mk's group.
func (m *macIndex) members(mk macKey) []ipKey {
	if ids, ok := m.more[mk]; ok {
		return ids
	}
	if id, ok := m.one[mk]; ok {
		return []ipKey{id}
	}
	return nil
}
