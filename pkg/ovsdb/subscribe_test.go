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
	if ev := <-s.C(); ev.Interface.Name != "first" {
		t.Fatalf("first event %+v", ev)
	}
	for i := 0; i < n; i++ {
		select {
		case ev := <-s.C():
			if ev.Interface.Name != fmt.Sprint(i) {
				t.Fatalf("event %d: got %q", i, ev.Interface.Name)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d never came", i)
		}
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
	if ev := <-s.C(); ev.Interface.ExternalIDs["k"] != "v" {
		t.Errorf("event shares its map with the producer: %v", ev.Interface.ExternalIDs)
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
