package ovsdb

import (
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestSubscriptionKeepsOrderAndLosesNothing(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := newSubscription(nil, []InterfaceEvent{{Kind: Added, Interface: Interface{UUID: "first", Name: "first"}}})
	const n = 10000 // distinct interfaces: nothing to merge
	go func() {     // a fast producer against a reader that starts late
		for i := 0; i < n; i++ {
			s.push([]InterfaceEvent{{Kind: Updated, Interface: Interface{UUID: fmt.Sprint("u", i), Name: fmt.Sprint(i)}}})
		}
	}()
	time.Sleep(20 * time.Millisecond)
	var got []InterfaceEvent
	batches := 0
	for len(got) < n+1 {
		select {
		case b := <-s.C():
			got = append(got, b...)
			batches++
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d never came", len(got))
		}
	}
	if got[0].Interface.Name != "first" {
		t.Fatalf("first event %+v", got[0])
	}
	for i, ev := range got[1:] {
		if ev.Interface.Name != fmt.Sprint(i) {
			t.Fatalf("event %d: got %q", i, ev.Interface.Name)
		}
	}
	if batches >= n {
		t.Errorf("%d events came in %d batches: a late reader should get the backlog at once", n, batches)
	}
	s.Close()
	if _, ok := <-s.C(); ok {
		t.Error("channel open after Close")
	}
	s.Close() // idempotent
}

func TestSubscriptionCopiesMaps(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := newSubscription(nil, nil)
	defer s.Close()
	m := map[string]string{"k": "v"}
	s.push([]InterfaceEvent{{Kind: Added, Interface: Interface{ExternalIDs: m}}})
	m["k"] = "changed"
	// The empty snapshot may come as a batch of its own, or with the event.
	b := <-s.C()
	if len(b) == 0 {
		b = <-s.C()
	}
	if len(b) != 1 || b[0].Interface.ExternalIDs["k"] != "v" {
		t.Errorf("event shares its map with the producer: %+v", b)
	}
}

func TestSubscriptionCloseWithPendingEvents(t *testing.T) {
	defer goleak.VerifyNone(t)
	detached := false
	s := newSubscription(func(*Subscription) { detached = true }, []InterfaceEvent{{Kind: Added}, {Kind: Added}})
	s.Close()
	if !detached {
		t.Error("Close did not detach")
	}
	for range s.C() { // drains whatever was in flight, then ends
	}
}

// A flapping interface costs one queue slot, whatever the number of its
// events and however late the reader, and the reader gets its latest state;
// the other interfaces keep the order of their last changes.
func TestSubscriptionMergesEventsOfOneInterface(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := newSubscription(nil, nil)
	defer s.Close()
	flap := func(i int) InterfaceEvent {
		return InterfaceEvent{Kind: Updated, Interface: Interface{UUID: "u-flap", Name: "flap",
			ExternalIDs: map[string]string{"n": fmt.Sprint(i)}}, Received: time.Unix(int64(1000+i), 0)}
	}
	s.push([]InterfaceEvent{{Kind: Added, Interface: Interface{UUID: "u-a", Name: "a"}}})
	const n = 100000
	maxSlots := 0
	for i := range n { // nobody reads meanwhile
		s.push([]InterfaceEvent{flap(i)})
		if i == n/2 {
			s.push([]InterfaceEvent{{Kind: Added, Interface: Interface{UUID: "u-b", Name: "b"}}})
		}
		_, slots := s.queued()
		maxSlots = max(maxSlots, slots)
	}
	if maxSlots > 3+64 {
		t.Fatalf("up to %d queue slots used for 3 interfaces", maxSlots)
	}
	// Besides the queue, the pump may hold one batch it took when the
	// flood began (the snapshot, "a", an early state of flap): read until
	// flap's last state, which must come after b's event.
	var got []InterfaceEvent
	for len(got) == 0 || got[len(got)-1].Interface.ExternalIDs["n"] != fmt.Sprint(n-1) {
		select {
		case b := <-s.C():
			got = append(got, b...)
		case <-time.After(5 * time.Second):
			t.Fatalf("flap's last state never came; got %+v", got)
		}
	}
	names := make([]string, len(got))
	for i, ev := range got {
		names[i] = ev.Interface.Name
	}
	if len(got) > 4 || names[0] != "a" || names[len(got)-2] != "b" {
		t.Fatalf("events for %v, want a, at most one early flap, b, then flap's last state", names)
	}
	if f := got[len(got)-1]; f.Kind != Updated || (len(got) == 3 && !f.Received.Equal(time.Unix(1000, 0))) {
		t.Fatalf("flap: %+v, want Updated, received at its first event unless delivered before", f)
	}
}

func TestSubscriptionMergeKinds(t *testing.T) {
	ev := func(k EventKind, v string) InterfaceEvent {
		return InterfaceEvent{Kind: k, Interface: Interface{UUID: "u", Name: "p", ExternalIDs: map[string]string{"v": v}}}
	}
	cases := []struct {
		name string
		in   []InterfaceEvent
		want []EventKind // kinds delivered, with the last value "2"
	}{
		{"added then updated", []InterfaceEvent{ev(Added, "1"), ev(Updated, "2")}, []EventKind{Added}},
		{"added then deleted", []InterfaceEvent{ev(Added, "1"), ev(Deleted, "2")}, nil},
		{"updated then deleted", []InterfaceEvent{ev(Updated, "1"), ev(Deleted, "2")}, []EventKind{Deleted}},
		{"deleted then back", []InterfaceEvent{ev(Deleted, "1"), ev(Added, "2")}, []EventKind{Updated}},
		{"updated twice", []InterfaceEvent{ev(Updated, "1"), ev(Updated, "2")}, []EventKind{Updated}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var q eventQueue
			for _, e := range c.in {
				q.add(e)
			}
			got := q.drain()
			if len(got) != len(c.want) {
				t.Fatalf("got %+v, want kinds %v", got, c.want)
			}
			for i, e := range got {
				if e.Kind != c.want[i] || e.Interface.ExternalIDs["v"] != "2" {
					t.Fatalf("event %d: %+v, want kind %v with the last state", i, e, c.want[i])
				}
			}
		})
	}
}
