package ovsdb

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/ovn-org/libovsdb/model"
)

func TestCloneModelsShareNothing(t *testing.T) {
	s, n := "secure", 5
	tests := []struct {
		name   string
		row    model.Model
		mutate func(model.Model) // changes every map, slice and pointer of a clone
	}{
		{"root", &ovsRow{UUID: "u", Bridges: []string{"b"}, OtherConfig: map[string]string{"k": "v"}},
			func(m model.Model) { r := m.(*ovsRow); r.Bridges[0] = "x"; r.OtherConfig["k"] = "x" }},
		{"bridge", &bridgeRow{UUID: "u", Name: "br", Ports: []string{"p"}, FailMode: &s,
			Protocols: []string{"OpenFlow13"}, DatapathType: "netdev", OtherConfig: map[string]string{"k": "v"}},
			func(m model.Model) {
				r := m.(*bridgeRow)
				r.Ports[0], r.Protocols[0], *r.FailMode, r.OtherConfig["k"] = "x", "x", "x", "x"
			}},
		{"port", &portRow{UUID: "u", Name: "p", Interfaces: []string{"i"}},
			func(m model.Model) { m.(*portRow).Interfaces[0] = "x" }},
		{"iface", &ifaceRow{UUID: "u", Name: "i", Type: "gre", Options: map[string]string{"k": "v"},
			ExternalIDs: map[string]string{"k": "v"}, OFPort: &n, OFPortRequest: &n, MACInUse: &s, Error: &s},
			func(m model.Model) {
				r := m.(*ifaceRow)
				r.Options["k"], r.ExternalIDs["k"], *r.OFPort, *r.OFPortRequest = "x", "x", 9, 9
				*r.MACInUse, *r.Error = "x", "x"
			}},
		{"empty iface", &ifaceRow{UUID: "u", Options: map[string]string{}}, func(model.Model) {}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := jsonCopy(t, tc.row) // a deep copy made independently
			clone := tc.row.(model.CloneableModel).CloneModel()
			if !reflect.DeepEqual(clone, tc.row) {
				t.Fatalf("clone %+v differs from %+v", clone, tc.row)
			}
			into := reflect.New(reflect.TypeOf(tc.row).Elem()).Interface()
			tc.row.(model.CloneableModel).CloneModelInto(into)
			if !reflect.DeepEqual(into, tc.row) {
				t.Fatalf("clone into %+v differs from %+v", into, tc.row)
			}
			tc.mutate(clone)
			tc.mutate(into)
			if !reflect.DeepEqual(tc.row, want) {
				t.Errorf("changing a clone changed the original: %+v", tc.row)
			}
		})
	}
}

func jsonCopy(t *testing.T, m model.Model) model.Model {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	out := reflect.New(reflect.TypeOf(m).Elem()).Interface()
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	return out
}
