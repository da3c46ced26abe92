package bench

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// l2Events is an independent observer of the l2_forward table for
// EtcdConverge's single changes: an `ovs-ofctl monitor` (OVS's flow
// monitor, pushed by ovs-vswitchd as it applies a change), keeping when
// each added or modified flow's line arrived. Unlike the dump-flows poll,
// whose one dump of a 100,000-flow table costs ovs-vswitchd 13-25 ms, it
// times when OVS holds the flow, not when a dump could show it.
type l2Events struct {
	stop func() // ends the monitor (before the benchmark's large changes: it would take 201,009 events at the floor's bundle); may be called twice

	mu    sync.Mutex
	lines []l2Event
}

type l2Event struct {
	at   time.Time
	line string
}

// watchL2 starts the monitor and waits until it has its reply (it is
// watching) or 5 s passed.
func watchL2(b *testing.B, node *testbed.Node) *l2Events {
	b.Helper()
	e := &l2Events{}
	first := make(chan struct{})
	once := sync.OnceFunc(func() { close(first) })
	l2 := fmt.Sprintf("table=%d ", pipeline.L2Forward.ID())
	e.stop = follow(b, flowMonitor(node.Dir), func(now time.Time, line string) {
		once()
		if strings.Contains(line, "event=DELETED") || !strings.Contains(line, l2) {
			return
		}
		e.mu.Lock()
		e.lines = append(e.lines, l2Event{at: now, line: line})
		e.mu.Unlock()
	})
	select {
	case <-first:
	case <-time.After(5 * time.Second):
	}
	return e
}

// added waits up to 30 s for the line of mac's l2_forward flow sending to
// host (reg2=hostHex) that arrived at or after t, and returns its arrival.
func (e *l2Events) added(b *testing.B, mac net.HardwareAddr, hostHex string, t time.Time) time.Time {
	b.Helper()
	want := []string{"dl_dst=" + mac.String(), hostHex + "->reg2"}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		e.mu.Lock()
		for _, ev := range e.lines {
			if !ev.at.Before(t) && strings.Contains(ev.line, want[0]) && strings.Contains(ev.line, want[1]) {
				e.mu.Unlock()
				return ev.at
			}
		}
		e.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	b.Fatalf("OVS's flow monitor reported no l2_forward flow %s within 30s", want)
	return time.Time{}
}
