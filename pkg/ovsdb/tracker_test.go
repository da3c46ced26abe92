package ovsdb

import (
	"maps"
	"slices"
	"testing"
)

func TestBridgeIndex(t *testing.T) {
	r := &rows{
		bridges: []bridgeRow{{UUID: "b", Name: "br-int", Ports: []string{"p1", "p2", "gone"}}},
		ports: []portRow{{UUID: "p1", Name: "one", Interfaces: []string{"i1"}},
			{UUID: "p2", Name: "bond", Interfaces: []string{"i2", "i3"}},
			{UUID: "p9", Name: "other", Interfaces: []string{"i9"}}},
	}
	tests := []struct {
		name      string
		ports     []string // the bridge's new port set
		wantMoved []string
		drop      string
		wantHeld  []string
		wantOwned map[string]string // interface -> port name, after both
	}{
		{"unchanged", []string{"p1", "p2", "gone"}, nil, "", nil,
			map[string]string{"i1": "one", "i2": "bond", "i3": "bond"}},
		{"port removed", []string{"p1", "gone"}, []string{"p2"}, "p2", []string{"i2", "i3"},
			map[string]string{"i1": "one"}},
		{"port added", []string{"p1", "p2", "p9"}, []string{"gone", "p9"}, "", nil,
			map[string]string{"i1": "one", "i2": "bond", "i3": "bond"}},
		{"not indexed", []string{"p1", "p2", "gone"}, nil, "p9", nil,
			map[string]string{"i1": "one", "i2": "bond", "i3": "bond"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ix := newBridgeIndex(r, "br-int")
			moved := ix.setPorts(tc.ports)
			slices.Sort(moved)
			if !slices.Equal(moved, tc.wantMoved) {
				t.Errorf("moved %v, want %v", moved, tc.wantMoved)
			}
			if held := ix.dropPort(tc.drop); !slices.Equal(held, tc.wantHeld) {
				t.Errorf("dropPort held %v, want %v", held, tc.wantHeld)
			}
			got := map[string]string{}
			for _, iu := range []string{"i1", "i2", "i3", "i9"} {
				if name, ok := ix.portOf(iu); ok {
					got[iu] = name
				}
			}
			if !maps.Equal(got, tc.wantOwned) {
				t.Errorf("owners %v, want %v", got, tc.wantOwned)
			}
		})
	}
	if ix := newBridgeIndex(r, "br-none"); len(ix.brPorts)+len(ix.ports) != 0 {
		t.Errorf("index of a missing bridge: %+v", ix)
	}
}

func TestChangesTake(t *testing.T) {
	var ch changes
	ch.mark(&bridgeRow{UUID: "b"})
	ch.mark(&portRow{UUID: "p"})
	ch.mark(&ifaceRow{UUID: "i"})
	ch.mark(&ovsRow{UUID: "o"})
	got := ch.take()
	if got.full || !got.bridges || len(got.ports) != 1 || len(got.ifaces) != 1 {
		t.Errorf("took %+v", got)
	}
	ch.setFull()
	if got := ch.take(); !got.full || got.bridges || got.ports != nil || got.ifaces != nil {
		t.Errorf("second take %+v", got)
	}
}
