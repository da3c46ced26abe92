package ovsdb

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/ovn-org/libovsdb/model"
)

// TestCloneModelsShareNothing clones every model with every field set and
// changes every map, slice and pointer of the clones (by reflection, so a
// column added to a model later is covered without editing this test): the
// originals must not change.
func TestCloneModelsShareNothing(t *testing.T) {
	s, n := "secure", 5
	tests := []struct {
		name string
		row  model.Model
	}{
		{"root", &ovsRow{UUID: "u", Bridges: []string{"b"}, OtherConfig: map[string]string{"k": "v"}}},
		{"bridge", &bridgeRow{UUID: "u", Name: "br", Ports: []string{"p"}, FailMode: &s,
			Protocols: []string{"OpenFlow13"}, DatapathType: "netdev", OtherConfig: map[string]string{"k": "v"},
			FlowTables: map[int]string{1: "t"}}},
		{"flow table", &flowTableRow{UUID: "u", Name: &s}},
		{"port", &portRow{UUID: "u", Name: "p", Interfaces: []string{"i"}}},
		{"iface", &ifaceRow{UUID: "u", Name: "i", Type: "gre", Options: map[string]string{"k": "v"},
			ExternalIDs: map[string]string{"k": "v"}, OFPort: &n, OFPortRequest: &n, MTURequest: &n, MACInUse: &s, Error: &s}},
	}
	for name, m := range tableModels() {
		if !slices.ContainsFunc(tests, func(tc struct {
			name string
			row  model.Model
		}) bool {
			return reflect.TypeOf(tc.row) == reflect.TypeOf(m)
		}) {
			t.Errorf("model of table %s (%T) has no case", name, m)
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := reflect.ValueOf(tc.row).Elem()
			for i := range v.NumField() {
				if v.Field(i).IsZero() {
					t.Fatalf("field %s of the case is not set: the test would not check it", v.Type().Field(i).Name)
				}
			}
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
			mutateAll(reflect.ValueOf(clone).Elem())
			mutateAll(reflect.ValueOf(into).Elem())
			if !reflect.DeepEqual(tc.row, want) {
				t.Errorf("changing a clone changed the original: %+v", tc.row)
			}
		})
	}
	empty := &ifaceRow{UUID: "u", Options: map[string]string{}}
	if c := empty.CloneModel().(*ifaceRow); c.Options == nil || c.ExternalIDs != nil {
		t.Errorf("clone of %+v: %+v (empty must stay empty, nil nil)", empty, c)
	}
}

// mutateAll changes what every map, slice and pointer field of v refers to.
func mutateAll(v reflect.Value) {
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Map:
			for _, k := range f.MapKeys() {
				f.SetMapIndex(k, changed(f.MapIndex(k)))
			}
		case reflect.Slice:
			for j := range f.Len() {
				f.Index(j).Set(changed(f.Index(j)))
			}
		case reflect.Pointer:
			if !f.IsNil() {
				f.Elem().Set(changed(f.Elem()))
			}
		}
	}
}

// changed is a different value of v's type (strings and ints only: the
// models hold nothing else).
func changed(v reflect.Value) reflect.Value {
	out := reflect.New(v.Type()).Elem()
	switch v.Kind() {
	case reflect.String:
		out.SetString(v.String() + "x")
	case reflect.Int:
		out.SetInt(v.Int() + 1)
	default:
		panic("mutateAll: unexpected kind " + v.Kind().String())
	}
	return out
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
