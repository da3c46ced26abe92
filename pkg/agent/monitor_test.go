package agent

import (
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/flow"
	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
)

// fu is a reported change of someone else: table, cookie, in_port match.
func fu(table uint8, cookie uint64, inPort byte) openflow.FlowUpdate {
	// ofp_match: OXM, length 12, in_port (0x80000004) = inPort, padding.
	m := []byte{0, 1, 0, 12, 0x80, 0, 0, 4, 0, 0, 0, inPort, 0, 0, 0, 0}
	return openflow.FlowUpdate{Event: openflow.FlowDeleted, TableID: table, Cookie: cookie, Priority: 100, MatchBytes: m}
}

func updates(us ...openflow.FlowUpdate) openflow.FlowMonitorEvent {
	return openflow.FlowMonitorEvent{Kind: openflow.FlowMonitorUpdates, Updates: us}
}

func TestDriftQueue(t *testing.T) {
	many := make([]openflow.FlowUpdate, maxScopes+1)
	for i := range many {
		many[i] = fu(1, uint64(i), 1)
	}
	tests := []struct {
		name    string
		events  []openflow.FlowMonitorEvent
		kicked  bool
		full    bool
		scopes  int // (table, cookie) pairs
		keys    int // flows named
		waiting bool
	}{
		{"one change", []openflow.FlowMonitorEvent{updates(fu(1, 7, 3))}, true, false, 1, 1, false},
		{"same scope twice, two flows", []openflow.FlowMonitorEvent{updates(fu(1, 7, 3)), updates(fu(1, 7, 4))}, true, false, 1, 2, false},
		{"two scopes", []openflow.FlowMonitorEvent{updates(fu(1, 7, 3), fu(2, 7, 3))}, true, false, 2, 2, false},
		{"own change ignored", []openflow.FlowMonitorEvent{updates(openflow.FlowUpdate{Event: openflow.FlowAbbrev, Xid: 5})}, false, false, 0, 0, false},
		{"foreign table ignored", []openflow.FlowMonitorEvent{updates(fu(200, 7, 3))}, false, false, 0, 0, false},
		{"too many scopes: full", []openflow.FlowMonitorEvent{updates(many...)}, true, true, 0, 0, false},
		{"lost: full", []openflow.FlowMonitorEvent{{Kind: openflow.FlowMonitorLost}}, true, true, 0, 0, false},
		{"paused: wait", []openflow.FlowMonitorEvent{updates(fu(1, 7, 3)), {Kind: openflow.FlowMonitorPaused}}, true, false, 0, 0, true},
		{"paused then resumed: full", []openflow.FlowMonitorEvent{{Kind: openflow.FlowMonitorPaused},
			updates(fu(1, 7, 3)), {Kind: openflow.FlowMonitorResumed}}, true, true, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newDriftQueue(6)
			for _, ev := range tt.events {
				q.add(ev)
			}
			select {
			case <-q.kick:
				if !tt.kicked {
					t.Fatal("kicked")
				}
			default:
				if tt.kicked {
					t.Fatal("not kicked")
				}
			}
			w, wait := q.take()
			if tt.waiting != (wait > 0) || w.full != tt.full || len(w.scopes) != tt.scopes {
				t.Fatalf("work %+v wait %v", w, wait)
			}
			keys := 0
			for _, s := range w.scopes {
				keys += len(s.Keys)
			}
			if keys != tt.keys {
				t.Fatalf("%d keys, want %d", keys, tt.keys)
			}
			if w, _ := q.take(); !tt.waiting && (w.full || len(w.scopes) > 0) {
				t.Fatalf("work left after take: %+v", w)
			}
		})
	}
}

// TestUpdateKey: the key of a reported flow equals the key of the flow
// the agent generates for it.
func TestUpdateKey(t *testing.T) {
	f := flow.Flow{Table: 1, Priority: 100, Match: flow.NewMatch(flow.FieldInPort.Is(3))}
	u := fu(1, 0, 3)
	if got, err := updateKey(&u); err != nil || got != f.Key() {
		t.Fatalf("key %+v (%v), want %+v", got, err, f.Key())
	}
	u.MatchBytes = u.MatchBytes[:2] // cannot happen (pkg/openflow checks), must not panic
	if _, err := updateKey(&u); err == nil {
		t.Fatal("a 2-byte match gave a key")
	}
}

func TestRepairTimer(t *testing.T) {
	r := newRepairTimer()
	r.arm(time.Hour)
	r.soon() // shortens the hour
	select {
	case <-r.t.C:
	case <-time.After(time.Second):
		t.Fatal("soon did not shorten a long wait")
	}
	r.fired(0)
	r.soon()
	at := r.at
	time.Sleep(2 * time.Millisecond)
	r.soon() // does not push it back
	if r.at != at {
		t.Fatal("a second report delayed the repair")
	}
	<-r.t.C
}

// TestDriftQueueCoverage: a successful full Sync covers the reports
// received before its dump started, queued or still to come.
func TestDriftQueueCoverage(t *testing.T) {
	t0 := time.Now()
	at := func(d time.Duration, ev openflow.FlowMonitorEvent) openflow.FlowMonitorEvent {
		ev.Received = t0.Add(d)
		return ev
	}
	lost := openflow.FlowMonitorEvent{Kind: openflow.FlowMonitorLost}
	tests := []struct {
		name   string
		before []openflow.FlowMonitorEvent // added before the Sync's coverage
		cover  time.Duration
		after  []openflow.FlowMonitorEvent // added after
		work   bool
	}{
		{"queued report covered", []openflow.FlowMonitorEvent{at(0, updates(fu(1, 7, 3)))}, time.Millisecond, nil, false},
		{"queued report newer than the dump kept", []openflow.FlowMonitorEvent{at(2*time.Millisecond, updates(fu(1, 7, 3)))},
			time.Millisecond, nil, true},
		{"late report received before the dump dropped", nil, time.Millisecond, []openflow.FlowMonitorEvent{at(0, updates(fu(1, 7, 3)))}, false},
		{"late loss before the dump dropped", nil, time.Millisecond, []openflow.FlowMonitorEvent{at(0, lost)}, false},
		{"loss after the dump kept", nil, time.Millisecond, []openflow.FlowMonitorEvent{at(2*time.Millisecond, lost)}, true},
		{"pause not covered until resumed", []openflow.FlowMonitorEvent{at(0, openflow.FlowMonitorEvent{Kind: openflow.FlowMonitorPaused})},
			time.Millisecond, []openflow.FlowMonitorEvent{at(2*time.Millisecond, openflow.FlowMonitorEvent{Kind: openflow.FlowMonitorResumed})}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newDriftQueue(6)
			for _, ev := range tt.before {
				q.add(ev)
			}
			q.cover(t0.Add(tt.cover))
			for _, ev := range tt.after {
				q.add(ev)
			}
			w, wait := q.take()
			if got := w.full || len(w.scopes) > 0 || wait > 0; got != tt.work {
				t.Fatalf("work %+v wait %v, want work %v", w, wait, tt.work)
			}
		})
	}
}

// TestDriftQueueWaitsForBurstEnd: a full Sync caused by a mass change waits
// until the reports stop for repairDelay, so that one Sync covers it.
func TestDriftQueueWaitsForBurstEnd(t *testing.T) {
	q := newDriftQueue(6)
	q.add(openflow.FlowMonitorEvent{Kind: openflow.FlowMonitorLost, Received: time.Now()})
	if _, wait := q.take(); wait <= 0 || wait > repairDelay {
		t.Fatalf("wait %v during a burst", wait)
	}
	time.Sleep(repairDelay)
	if w, wait := q.take(); wait != 0 || !w.full {
		t.Fatalf("work %+v wait %v after the burst", w, wait)
	}
}
