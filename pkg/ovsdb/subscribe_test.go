package ovsdb

import (
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestSubscriptionKeepsOrderAndLosesNothing(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := newSubscription(nil, []InterfaceEvent{{Kind: Added, Interface: Interface{Name: "first"}}})
	const n = 10000
	go func() { // a fast producer against a reader that starts late
		for i := 0; i < n; i++ {
			s.push([]InterfaceEvent{{Kind: Updated, Interface: Interface{Name: fmt.Sprint(i)}}})
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
