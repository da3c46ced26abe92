package ovsdb

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// TestSnapshotMatchesTheMonitor: the snapshot (its own connection, its own
// decoder) sees br-int's interfaces exactly as libovsdb's monitor does, with
// every column the client reads set in some row (escapes, an error, an
// ofport requested, an MTU), and none of another bridge. A client's
// Preload makes it Synced with that view before Run, and libovsdb's first
// read, once Run connects, publishes nothing more when nothing changed (the
// settle marker alone); a change made afterwards is reported as usual.
func TestSnapshotMatchesTheMonitor(t *testing.T) {
	n := testbed.NewNode(t, "snap")
	full, _ := startClient(t, n, nil)
	ctx := ctxT(t, 60*time.Second)
	if err := full.EnsureBridge(ctx); err != nil {
		t.Fatal(err)
	}
	n.Vsctl(t, "add-port", "br-int", "snap0", "--", "set", "interface", "snap0", "type=internal",
		"ofport_request=50", "mtu_request=1400", `external_ids:k="a\"b\\c é"`, "external_ids:ofctl-agent.ip=10.0.0.1")
	n.Vsctl(t, "add-port", "br-int", "snap1", "--", "set", "interface", "snap1", "options:x=y") // no such device: an error
	n.Vsctl(t, "add-br", "br-other", "--", "set", "bridge", "br-other", "datapath_type=netdev")
	n.Vsctl(t, "add-port", "br-other", "other0", "--", "set", "interface", "other0", "type=internal")
	byUUID := func(ifaces []Interface) map[string]Interface {
		out := map[string]Interface{}
		for _, i := range ifaces {
			out[i.UUID] = i
		}
		return out
	}
	var snap, mon map[string]Interface
	testbed.Eventually(t, 30*time.Second, func() bool {
		r, err := readSnapshot(ctx, n.DBAddr())
		if err != nil {
			t.Fatal(err)
		}
		snap, mon = bridgeInterfaces(&r, "br-int"), byUUID(full.Interfaces())
		s0 := findName(snap, "snap0")
		return len(snap) == 3 && s0.OFPort == 50 && s0.MACInUse != "" && findName(snap, "snap1").Error != "" &&
			reflect.DeepEqual(snap, mon)
	}, "snapshot and monitor differ:\nsnapshot %+v\nmonitor  %+v", snap, mon)

	c, err := New(Config{Endpoint: n.DBAddr(), NodeName: n.Name, Bridge: BridgeConfig{DatapathType: "netdev"}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if bridge, err := c.Preload(ctx); err != nil || !bridge {
		t.Fatalf("Preload: bridge %v, err %v", bridge, err)
	}
	<-c.Synced() // before Run
	rec := record(c.Subscribe())
	if got := byUUID(c.Interfaces()); !reflect.DeepEqual(got, mon) {
		t.Fatalf("interfaces after Preload: %+v, want %+v", got, mon)
	}
	select {
	case <-c.Monitored():
		t.Fatal("Monitored before Run")
	default:
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	t.Cleanup(func() {
		c.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	testbed.Eventually(t, 20*time.Second, func() bool { return c.Stats().Connected }, "libovsdb never connected")
	select {
	case <-c.Monitored():
	case <-time.After(20 * time.Second):
		t.Fatal("Monitored not closed after the monitor's first read")
	}
	if _, err := c.Preload(ctx); err == nil {
		t.Error("Preload after Run: no error")
	}
	rec.settle(t, n) // libovsdb's first read and the marker are published
	evs := rec.events()
	if len(evs) < 3 || !reflect.DeepEqual(byUUID(c.Interfaces()), mon) {
		t.Fatalf("events with the snapshot: %v; want the 3 interfaces, then the marker's alone", rec)
	}
	for i, ev := range evs {
		if i < 3 && (ev.Kind != Added || !reflect.DeepEqual(ev.Interface, mon[ev.Interface.UUID])) ||
			i >= 3 && ev.Interface.Name != "marker1" {
			t.Fatalf("event %d of %v: want the snapshot's 3 interfaces added, then the marker's events alone", i, rec)
		}
	}
	n.Vsctl(t, "set", "interface", "snap0", "external_ids:k=v2")
	rec.wait(t, len(evs), "snap0 updated", func(ev InterfaceEvent) bool {
		return ev.Kind == Updated && ev.Interface.Name == "snap0" && ev.Interface.ExternalIDs["k"] == "v2"
	})
}

func findName(ifaces map[string]Interface, name string) Interface {
	for _, i := range ifaces {
		if i.Name == name {
			return i
		}
	}
	return Interface{Name: fmt.Sprintf("(no %s)", name)}
}
