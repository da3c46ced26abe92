package ovsdb

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// snapshotAnswer is a well-formed answer to snapshotTxn using every column
// form RFC 7047 allows.
const snapshotAnswer = `{"id":1,"error":null,"result":[` +
	`{"rows":[{"_uuid":["uuid","b1"],"name":"br-int","ports":["set",[["uuid","p1"],["uuid","p2"]]]}]},` +
	`{"rows":[{"_uuid":["uuid","p1"],"name":"d0","interfaces":["uuid","i1"]},` +
	`{"_uuid":["uuid","p2"],"name":"gre0","interfaces":["set",[["uuid","i2"]]]}]},` +
	`{"rows":[{"_uuid":["uuid","i1"],"name":"d0","type":"patch","options":["map",[["peer","d1"]]],` +
	`"external_ids":["map",[["k","a\"b\\c \u00e9"],["ofctl-agent.ip","10.0.0.1"]]],"ofport":7,` +
	`"ofport_request":["set",[]],"mtu_request":["set",[1400]],"mac_in_use":"aa:bb:cc:dd:ee:ff","error":["set",[]]},` +
	` {"_uuid":["uuid","i2"], "name":"gre0","type":"gre","options":["map",[]],"external_ids":["map",[]],` +
	`"ofport":["set",[]],"ofport_request":100,"mtu_request":["set",[]],"mac_in_use":["set",[]],"error":"could not open"}]},` +
	`{"rows":[{"_uuid":["uuid","o1"],"other_config":["map",[["flow-restore-wait","true"]]]}]}]}`

// parseSnapshot reads the answer to the snapshot's transaction into rows,
// every column form RFC 7047 allows (a set of one as the atom alone, empty
// sets, escapes), and refuses what is not a well-formed answer.
func TestParseSnapshot(t *testing.T) {
	want := rows{
		root:    []ovsRow{{UUID: "o1", OtherConfig: map[string]string{keyRestore: "true"}}},
		bridges: []bridgeRow{{UUID: "b1", Name: "br-int", Ports: []string{"p1", "p2"}}},
		ports:   []portRow{{UUID: "p1", Name: "d0", Interfaces: []string{"i1"}}, {UUID: "p2", Name: "gre0", Interfaces: []string{"i2"}}},
		ifaces: []ifaceRow{
			{UUID: "i1", Name: "d0", Type: "patch", Options: map[string]string{"peer": "d1"},
				ExternalIDs: map[string]string{"k": "a\"b\\c é", "ofctl-agent.ip": "10.0.0.1"}, OFPort: intp(7),
				MTURequest: intp(1400), MACInUse: strp("aa:bb:cc:dd:ee:ff")},
			{UUID: "i2", Name: "gre0", Type: "gre", OFPortRequest: intp(100), Error: strp("could not open")},
		},
	}
	r, ours, err := parseSnapshot([]byte(snapshotAnswer))
	if err != nil || !ours || !reflect.DeepEqual(r, want) {
		t.Fatalf("parseSnapshot: ours %v, err %v\n got %+v\nwant %+v", ours, err, r, want)
	}
	if _, ours, err := parseSnapshot([]byte(`{"id":"echo","method":"echo","params":[]}`)); ours || err != nil {
		t.Fatalf("the server's echo request: ours %v, err %v", ours, err)
	}
	for _, tc := range []struct{ name, msg, wantErr string }{
		{"server error", `{"id":1,"result":null,"error":"unknown database"}`, "server error"},
		{"operation error", `{"id":1,"error":null,"result":[{"error":"unknown column","details":"no column x"}]}`, "no column x"},
		{"two ofports", strings.Replace(snapshotAnswer, `"ofport":7`, `"ofport":["set",[7,8]]`, 1), "at most one"},
		{"map as a set", strings.Replace(snapshotAnswer, `"options":["map",[["peer","d1"]]]`, `"options":["set",[]]`, 1), "want a map"},
		{"truncated", snapshotAnswer[:len(snapshotAnswer)-3], "want"},
		{"trailing bytes", snapshotAnswer + `x`, "trailing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseSnapshot([]byte(tc.msg))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// The framer splits messages sent back to back, wherever the reads cut
// them, braces and escaped quotes inside strings included; a stream that
// ends inside a message is an error.
func TestFramer(t *testing.T) {
	const a, b = `{"id":"echo","method":"echo","params":["}{\"]"]}`, ` {"id":1,"result":[{"rows":[]}],"error":null}`
	for _, r := range []io.Reader{strings.NewReader(a + b), iotest.OneByteReader(strings.NewReader(a + b))} {
		f := framer{r: r, buf: make([]byte, 0, 4)}
		for i, want := range []string{a, strings.TrimSpace(b)} {
			msg, err := f.next()
			if err != nil || strings.TrimSpace(string(msg)) != want {
				t.Fatalf("message %d: %q, %v; want %q", i, msg, err, want)
			}
		}
		if msg, err := f.next(); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("at the end: %q, %v", msg, err)
		}
	}
	f := framer{r: strings.NewReader(a[:20]), buf: make([]byte, 0, 64)}
	if msg, err := f.next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut message: %q, %v", msg, err)
	}
}

// InterfacesWhere returns the accepted interfaces alone, by name, as
// copies the caller may change.
func TestInterfacesWhere(t *testing.T) {
	c, err := New(Config{Endpoint: "unix:/nowhere", NodeName: "n"})
	if err != nil {
		t.Fatal(err)
	}
	c.known = map[string]Interface{
		"u3": {UUID: "u3", Name: "ofgw-red", ExternalIDs: map[string]string{"k": "v"}},
		"u1": {UUID: "u1", Name: "d1"},
		"u2": {UUID: "u2", Name: "ofgw-blue"},
	}
	got := c.InterfacesWhere(func(i *Interface) bool { return strings.HasPrefix(i.Name, "ofgw-") })
	if len(got) != 2 || got[0].Name != "ofgw-blue" || got[1].Name != "ofgw-red" {
		t.Fatalf("got %+v, want ofgw-blue then ofgw-red", got)
	}
	got[1].ExternalIDs["k"] = "changed"
	if c.known["u3"].ExternalIDs["k"] != "v" {
		t.Fatal("InterfacesWhere returned the client's own map")
	}
}
