package openflow

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/contiv/libOpenflow/openflow13"

	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

var capture = flag.Bool("capture", false, "write the flow monitor messages of TestOVSFlowMonitor to testdata/ovs")

// recorder keeps the flow monitor messages the connection reads, by
// scenario, for -capture.
type recorder struct {
	mu       sync.Mutex
	scenario string
	msgs     map[string][][]byte
	stall    chan struct{} // while set, the connection's reader waits (hook) until it is closed
}

// stallReader makes the connection's reader wait in the hook until the
// returned function is called: the switch's queue towards us grows.
func (r *recorder) stallReader() (release func()) {
	ch := make(chan struct{})
	r.mu.Lock()
	r.stall = ch
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		r.stall = nil
		r.mu.Unlock()
		close(ch)
	}
}

func (r *recorder) set(s string) { r.mu.Lock(); r.scenario = s; r.mu.Unlock() }

func (r *recorder) hook(b []byte) {
	r.mu.Lock()
	stall := r.stall
	r.mu.Unlock()
	if stall != nil {
		<-stall
	}
	_, pause, _ := pauseSignal(b)
	part, err := parseMultipartReply(b)
	update := err == nil && part.Type == mpExperimenter
	if !pause && !update && b[1] != typeError {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.msgs == nil {
		r.msgs = map[string][][]byte{}
	}
	if len(r.msgs[r.scenario]) < 4 && len(b) <= 2048 {
		r.msgs[r.scenario] = append(r.msgs[r.scenario], bytes.Clone(b))
	}
}

// write stores the recorded messages as testdata/ovs/flowmon-<scenario>-<TYPE>-<n>.hex.
func (r *recorder) write(t *testing.T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for s, msgs := range r.msgs {
		n := map[uint8]int{}
		for _, b := range msgs {
			n[b[1]]++
			name := fmt.Sprintf("flowmon-%s-%s-%d.hex", s, strings.TrimPrefix(MsgTypeName(b[1]), "OFPT_"), n[b[1]])
			if err := os.WriteFile(filepath.Join("testdata", "ovs", name), []byte(hex.EncodeToString(b)+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// nextEvent returns the next event of kinds other than skip, failing after 5 s.
func nextEvent(t *testing.T, m *FlowMonitor, skip ...FlowMonitorEventKind) FlowMonitorEvent {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-m.C:
			if !ok {
				t.Fatal("monitor channel closed")
			}
			if !containsKind(skip, ev.Kind) {
				return ev
			}
		case <-timeout:
			t.Fatal("no flow monitor event within 5s")
		}
	}
}

func containsKind(ks []FlowMonitorEventKind, k FlowMonitorEventKind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

// oneUpdate waits for an event with exactly one full update and checks it.
func oneUpdate(t *testing.T, m *FlowMonitor, want FlowUpdate) FlowUpdate {
	t.Helper()
	ev := nextEvent(t, m)
	if ev.Kind != FlowMonitorUpdates || len(ev.Updates) != 1 {
		t.Fatalf("want one update, got %+v", ev)
	}
	u := ev.Updates[0]
	if u.Event != want.Event || u.TableID != want.TableID || u.Cookie != want.Cookie || u.Priority != want.Priority ||
		u.Reason != want.Reason || (want.MatchBytes != nil && !bytes.Equal(u.MatchBytes, want.MatchBytes)) {
		t.Fatalf("update %+v, want %+v", u, want)
	}
	return u
}

// nwDst10001 is the ofp_match of "ip,nw_dst=10.0.0.1" as OVS sends it.
var nwDst10001, _ = hex.DecodeString("0001001280000a020800800018040a000001000000000000")

// TestOVSFlowMonitor: out-of-band changes by another connection
// (ovs-ofctl) are reported with their table and cookie; this connection's
// own flow_mods and bundles only as abbreviated updates; a mass change
// pauses and resumes the updates; a bad request is refused; Close cancels.
func TestOVSFlowMonitor(t *testing.T) {
	n, addr := ovsNode(t)
	rec := &recorder{scenario: "initial"}
	c := dialOVS(t, addr, func(cfg *Config) { cfg.recvHook = rec.hook })
	n.Ofctl(t, "add-flow", "br-int", "table=1,cookie=0x7,priority=9,in_port=3,actions=goto_table:4")
	m, err := c.MonitorFlows(testCtx(t), FlowMonitorRequest{Flags: MonitorInitial | MonitorAdd | MonitorDelete | MonitorModify, TableID: AllTables})
	if err != nil {
		t.Fatal(err)
	}
	ev := nextEvent(t, m)
	if !ev.Initial || len(ev.Updates) != 1 || ev.Updates[0].Cookie != 0x7 || ev.Updates[0].TableID != 1 {
		t.Fatalf("initial event %+v", ev)
	}
	t.Run("rogue add, modify, delete", func(t *testing.T) {
		rec.set("add")
		n.Ofctl(t, "add-flow", "br-int", "table=3,cookie=0x42,priority=5,ip,nw_dst=10.0.0.1,actions=drop")
		oneUpdate(t, m, FlowUpdate{Event: FlowAdded, TableID: 3, Cookie: 0x42, Priority: 5, MatchBytes: nwDst10001})
		rec.set("modify")
		n.Ofctl(t, "mod-flows", "br-int", "table=3,actions=output:1")
		oneUpdate(t, m, FlowUpdate{Event: FlowModified, TableID: 3, Cookie: 0x42, Priority: 5, MatchBytes: nwDst10001})
		rec.set("delete")
		n.Ofctl(t, "del-flows", "br-int", "table=3")
		oneUpdate(t, m, FlowUpdate{Event: FlowDeleted, Reason: openflow13.RR_DELETE, TableID: 3, Cookie: 0x42, Priority: 5, MatchBytes: nwDst10001})
	})
	t.Run("own changes abbreviated", func(t *testing.T) { testOwnChanges(t, n, c, m, rec) })
	t.Run("mass change pauses and resumes", func(t *testing.T) { testPauseResume(t, n, m, rec) })
	t.Run("bad request refused", func(t *testing.T) {
		// nw_dst without eth_type: OFPBMC_BAD_PREREQ.
		// Open vSwitch 3.1 logs "sending OFPBMC_BAD_PREREQ error reply"
		// but sends an error made of uninitialized memory (another
		// version, any xid): the barrier after the request tells.
		rec.set("refused")
		_, err := c.MonitorFlows(testCtx(t), FlowMonitorRequest{TableID: AllTables, Match: []byte{0x80, 0, 0x18, 4, 10, 0, 0, 1}})
		if !errors.Is(err, errNoMonitorReply) {
			t.Fatalf("err = %v, want the refusal", err)
		}
		if err := c.Barrier(testCtx(t)); err != nil {
			t.Fatalf("connection unusable after the refusal: %v", err)
		}
	})
	t.Run("close cancels, connection end closes", func(t *testing.T) {
		rec.set("close")
		if err := m.Close(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if _, ok := <-m.C; ok {
			t.Fatal("C open after Close")
		}
		m2, err := c.MonitorFlows(testCtx(t), FlowMonitorRequest{TableID: 2})
		if err != nil {
			t.Fatal(err)
		}
		n.Ofctl(t, "add-flow", "br-int", "table=2,cookie=0x2,actions=drop")
		oneUpdate(t, m2, FlowUpdate{Event: FlowAdded, TableID: 2, Cookie: 0x2, Priority: 0x8000})
		_ = c.Close()
		untilClosed(t, m2)
	})
	if *capture {
		rec.write(t)
	}
}

// testOwnChanges: a flow_mod and a bundle from this connection give only
// FlowAbbrev updates with their xids; a rogue flow added afterwards is the
// next full update.
func testOwnChanges(t *testing.T, n *testbed.Node, c *Conn, m *FlowMonitor, rec *recorder) {
	rec.set("own")
	xid, err := c.Send(ipFlow(1, 2, 100, 0x99))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Barrier(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	b, err := c.Bundle(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := b.Add(ipFlow(10+i, 2, 100, 0x98)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	rec.set("marker")
	n.Ofctl(t, "add-flow", "br-int", "table=4,cookie=0x4,actions=drop")
	var abbrevs []uint32
	for {
		ev := nextEvent(t, m)
		if ev.Kind != FlowMonitorUpdates {
			t.Fatalf("event %+v", ev)
		}
		for _, u := range ev.Updates {
			switch {
			case u.Event == FlowAbbrev:
				abbrevs = append(abbrevs, u.Xid)
			case u.Cookie == 0x4 && u.TableID == 4 && u.Event == FlowAdded:
				if len(abbrevs) != 2 || abbrevs[0] != xid {
					t.Fatalf("abbreviated updates for xids %v, want 2 (the flow_mod's %d, the bundle's)", abbrevs, xid)
				}
				return
			default:
				t.Fatalf("own change reported in full: %+v", u)
			}
		}
	}
}

// testPauseResume: ovs-ofctl adds then deletes 20,000 flows while the
// connection does not read. Every change is reported, then the switch
// pauses (its queue to us passed 128 kB) and resumes once we read again;
// a later change is reported again.
func testPauseResume(t *testing.T, n *testbed.Node, m *FlowMonitor, rec *recorder) {
	const nFlows = 20_000
	var file strings.Builder
	for i := range nFlows {
		fmt.Fprintf(&file, "table=6,cookie=%#x,priority=10,ip,nw_dst=10.1.%d.%d,actions=drop\n", 0x1000+i%50, i>>8, i&0xff)
	}
	path := filepath.Join(t.TempDir(), "flows")
	if err := os.WriteFile(path, []byte(file.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		name  string
		args  []string
		event FlowUpdateEvent
	}{
		{"add", []string{"--bundle", "add-flows", "br-int", path}, FlowAdded},
		{"delete", []string{"del-flows", "br-int", "table=6"}, FlowDeleted},
	} {
		rec.set("mass-" + step.name)
		release := rec.stallReader() // so that OVS's queue towards us passes 128 kB
		n.Ofctl(t, step.args...)
		time.Sleep(200 * time.Millisecond)
		release()
		count, paused := 0, false
		for done := false; !done; {
			ev := nextEvent(t, m)
			switch ev.Kind {
			case FlowMonitorUpdates:
				for _, u := range ev.Updates {
					if u.Event != step.event || u.TableID != 6 {
						t.Fatalf("%s: update %+v", step.name, u)
					}
				}
				count += len(ev.Updates)
			case FlowMonitorPaused:
				paused = true
			case FlowMonitorResumed:
				done = paused
			default:
				t.Fatalf("%s: event %+v", step.name, ev)
			}
		}
		if count != nFlows {
			t.Fatalf("%s: %d updates until the resume, want %d", step.name, count, nFlows)
		}
	}
	rec.set("after-resume")
	n.Ofctl(t, "add-flow", "br-int", "table=7,cookie=0x77,actions=drop")
	oneUpdate(t, m, FlowUpdate{Event: FlowAdded, TableID: 7, Cookie: 0x77, Priority: 0x8000})
}
