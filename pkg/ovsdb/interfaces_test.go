package ovsdb

import (
	"reflect"
	"testing"
)

func intp(n int) *int       { return &n }
func strp(s string) *string { return &s }
func ids(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// testRows: br-int holds ports p1 (iface i1) and p2 (iface i2, odd values);
// br-other holds p3 (iface i3); p1 also names a dangling interface.
func testRows() *rows {
	return &rows{
		bridges: []bridgeRow{
			{UUID: "b1", Name: "br-int", Ports: []string{"p1", "p2", "missing-port"}},
			{UUID: "b2", Name: "br-other", Ports: []string{"p3"}},
		},
		ports: []portRow{
			{UUID: "p1", Name: "veth1", Interfaces: []string{"i1", "missing-iface"}},
			{UUID: "p2", Name: "odd", Interfaces: []string{"i2"}},
			{UUID: "p3", Name: "other", Interfaces: []string{"i3"}},
		},
		ifaces: []ifaceRow{
			{UUID: "i1", Name: "veth1", OFPort: intp(3), OFPortRequest: intp(3), MACInUse: strp("02:00:00:00:00:01"),
				ExternalIDs: ids("iface-id", "c1")},
			{UUID: "i2", Name: "odd", Type: "internal", OFPort: intp(-1), ExternalIDs: map[string]string{},
				Error: strp("could not open network device odd (No such device)")},
			{UUID: "i3", Name: "other", OFPort: intp(1)},
		},
	}
}

func TestBridgeInterfaces(t *testing.T) {
	got := bridgeInterfaces(testRows(), "br-int")
	want := map[string]Interface{
		"i1": {UUID: "i1", Name: "veth1", Port: "veth1", OFPort: 3, OFPortRequest: 3,
			MACInUse: "02:00:00:00:00:01", ExternalIDs: ids("iface-id", "c1")},
		"i2": {UUID: "i2", Name: "odd", Port: "odd", Type: "internal", OFPort: -1,
			Error: "could not open network device odd (No such device)"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if n := len(bridgeInterfaces(testRows(), "br-none")); n != 0 {
		t.Errorf("missing bridge: %d interfaces", n)
	}
	// Rows with nothing but a name (no ofport yet) are reported, not dropped.
	r := &rows{bridges: []bridgeRow{{UUID: "b", Name: "br-int", Ports: []string{"p"}}},
		ports: []portRow{{UUID: "p", Name: "new", Interfaces: []string{"i"}}}, ifaces: []ifaceRow{{UUID: "i", Name: "new"}}}
	if got := bridgeInterfaces(r, "br-int"); got["i"].Name != "new" || got["i"].OFPort != 0 || got["i"].ExternalIDs != nil {
		t.Errorf("bare row: %+v", got)
	}
}

func TestBridgeInterfacesCopiesMaps(t *testing.T) {
	r := testRows()
	got := bridgeInterfaces(r, "br-int")
	r.ifaces[0].ExternalIDs["iface-id"] = "changed"
	if got["i1"].ExternalIDs["iface-id"] != "c1" {
		t.Error("interface shares external_ids with the cache row")
	}
}

func TestDiffInterfaces(t *testing.T) {
	a := Interface{UUID: "u-a", Name: "a", OFPort: 1}
	b := Interface{UUID: "u-b", Name: "b"}
	b2 := b
	b2.OFPort = 7
	c := Interface{UUID: "u-c", Name: "c", ExternalIDs: ids("k", "v")}
	c2 := c
	c2.ExternalIDs = ids("k", "v2")
	a2 := Interface{UUID: "u-a2", Name: "a", OFPort: 1} // same name, new row
	tests := []struct {
		name     string
		old, new []Interface
		want     []InterfaceEvent
	}{
		{"nothing", nil, nil, nil},
		{"add", nil, []Interface{b, a}, []InterfaceEvent{{Kind: Added, Interface: a}, {Kind: Added, Interface: b}}},
		{"delete", []Interface{a, b}, []Interface{b}, []InterfaceEvent{{Kind: Deleted, Interface: a}}},
		{"ofport assigned", []Interface{b}, []Interface{b2}, []InterfaceEvent{{Kind: Updated, Interface: b2}}},
		{"external_ids changed", []Interface{c}, []Interface{c2}, []InterfaceEvent{{Kind: Updated, Interface: c2}}},
		{"unchanged", []Interface{a, c}, []Interface{a, c}, nil},
		{"recreated: delete before add", []Interface{a}, []Interface{a2}, []InterfaceEvent{{Kind: Deleted, Interface: a}, {Kind: Added, Interface: a2}}},
		{"mixed order", []Interface{a, b, c}, []Interface{b2, c, a2},
			[]InterfaceEvent{{Kind: Deleted, Interface: a}, {Kind: Added, Interface: a2}, {Kind: Updated, Interface: b2}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := diffInterfaces(byUUID(tc.old), byUUID(tc.new))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func byUUID(l []Interface) map[string]Interface {
	m := map[string]Interface{}
	for _, i := range l {
		m[i.UUID] = i
	}
	return m
}

// TestInterfaceEqualCoversFields changes every field in turn: equal must
// notice each, so a field added later cannot be forgotten by the diff.
func TestInterfaceEqualCoversFields(t *testing.T) {
	base := Interface{UUID: "u", Name: "n", Port: "p", Type: "t", OFPort: 1, OFPortRequest: 1,
		MACInUse: "m", ExternalIDs: ids("k", "v"), Options: ids("o", "v"), Error: "e"}
	if !base.equal(base.clone()) {
		t.Fatal("clone not equal")
	}
	if !(Interface{ExternalIDs: map[string]string{}}).equal(Interface{}) {
		t.Error("empty and nil external_ids differ")
	}
	v := reflect.ValueOf(&base).Elem()
	for i := 0; i < v.NumField(); i++ {
		mod := base.clone()
		f := reflect.ValueOf(&mod).Elem().Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(f.String() + "x")
		case reflect.Int:
			f.SetInt(f.Int() + 1)
		case reflect.Map:
			f.Set(reflect.ValueOf(ids("other", "v")))
		default:
			t.Fatalf("field %s: kind %s not covered by this test", v.Type().Field(i).Name, f.Kind())
		}
		if base.equal(mod) {
			t.Errorf("equal ignores field %s", v.Type().Field(i).Name)
		}
	}
}

func TestEventKindString(t *testing.T) {
	for k, want := range map[EventKind]string{Added: "added", Updated: "updated", Deleted: "deleted", 0: "unknown"} {
		if k.String() != want {
			t.Errorf("%d: %q", k, k.String())
		}
	}
}
