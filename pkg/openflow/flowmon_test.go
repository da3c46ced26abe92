package openflow

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/contiv/libOpenflow/openflow13"

	sw "github.com/ofctl-agent/ofctl-agent/pkg/openflow/ofswitchtest"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFlowMonitorBody: the request body, as ovs-ofctl ofp-print (3.1)
// decodes it: "ONFST_FLOW_MONITOR request (OF1.3): id=1
// flags=add,delete,modify out_port=5 table=3 ip".
func TestFlowMonitorBody(t *testing.T) {
	req, err := FlowMonitorRequest{TableID: 3, OutPort: 5, Match: []byte{0x80, 0, 0x0a, 2, 8, 0}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := mustHex(t, "4f4e4600 0000074e  00000001 000e 000a 00000005 03 000000  0001 000a 80000a02 0800 000000000000")
	if got := flowMonitorBody(1, req); !bytes.Equal(got, want) {
		t.Fatalf("body\n%x\nwant\n%x", got, want)
	}
	all, _ := FlowMonitorRequest{TableID: AllTables}.withDefaults()
	want = mustHex(t, "4f4e4600 0000074e  00000002 000e 0004 ffffffff ff 000000  0001 0004 00000000")
	if got := flowMonitorBody(2, all); !bytes.Equal(got, want) {
		t.Fatalf("body\n%x\nwant\n%x", got, want)
	}
	for _, flags := range []uint16{MonitorInitial, MonitorOwn | MonitorActions, 1 << 6} {
		if _, err := (FlowMonitorRequest{Flags: flags}).withDefaults(); err == nil {
			t.Errorf("flags %#x accepted", flags)
		}
	}
	cancel := flowMonitorCancelBytes(7)
	if want := mustHex(t, "04 04 0014 00000000 4f4e4600 0000074e 00000007"); !bytes.Equal(cancel, want) {
		t.Fatalf("cancel %x, want %x", cancel, want)
	}
}

// update builds a full flow update with an empty match and instr bytes.
func update(event FlowUpdateEvent, table uint8, cookie uint64, instr []byte) []byte {
	b := make([]byte, flowUpdateFullLen+8, flowUpdateFullLen+8+len(instr))
	binary.BigEndian.PutUint16(b[0:2], uint16(len(b)+len(instr)))
	binary.BigEndian.PutUint16(b[2:4], uint16(event))
	binary.BigEndian.PutUint16(b[6:8], 100)
	binary.BigEndian.PutUint16(b[12:14], 4)
	b[14] = table
	binary.BigEndian.PutUint64(b[16:24], cookie)
	copy(b[24:], []byte{0, 1, 0, 4})
	return append(b, instr...)
}

func abbrev(xid uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{0, 8, 0, 3}, xid)
}

func TestParseFlowUpdates(t *testing.T) {
	goto4 := []byte{0, 1, 0, 8, 4, 0, 0, 0}
	ups, err := parseFlowUpdates(bytes.Join([][]byte{update(FlowAdded, 3, 0x42, nil), abbrev(9), update(FlowModified, 1, 7, goto4)}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(ups) != 3 || ups[0].Event != FlowAdded || ups[0].TableID != 3 || ups[0].Cookie != 0x42 || ups[0].Priority != 100 ||
		!bytes.Equal(ups[0].MatchBytes, []byte{0, 1, 0, 4, 0, 0, 0, 0}) || ups[0].InstructionBytes != nil ||
		ups[1].Event != FlowAbbrev || ups[1].Xid != 9 || !bytes.Equal(ups[2].InstructionBytes, goto4) {
		t.Fatalf("updates %+v", ups)
	}
	withMatch := update(FlowDeleted, 1, 1, nil)
	binary.BigEndian.PutUint16(withMatch[12:14], 10) // match_len 10, ofp_match says 4
	badEvent := update(FlowAdded, 1, 1, nil)
	badEvent[3] = 9
	longMatch := update(FlowAdded, 1, 1, nil)
	binary.BigEndian.PutUint16(longMatch[12:14], 12)
	binary.BigEndian.PutUint16(longMatch[26:28], 12)
	nonOXM := update(FlowAdded, 1, 1, nil)
	nonOXM[25] = 0
	for name, body := range map[string][]byte{
		"trailing bytes":        append(abbrev(1), 0, 8),
		"length not multiple 8": {0, 12, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0},
		"length past the end":   {0, 16, 0, 3, 0, 0, 0, 0},
		"length zero":           {0, 0, 0, 0, 0, 0, 0, 0},
		"abbrev too long":       {0, 16, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"full too short":        {0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"unknown event":         badEvent,
		"match lengths differ":  withMatch,
		"match past the end":    longMatch,
		"match not OXM":         nonOXM,
	} {
		if _, err := parseFlowUpdates(body); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

// monitorReply is an ONF flow monitor multipart reply holding updates.
func monitorReply(xid uint32, more bool, updates ...[]byte) []byte {
	body := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, onfExperimenter), onfFlowMonitor)
	for _, u := range updates {
		body = append(body, u...)
	}
	return sw.MultipartReply(xid, mpExperimenter, more, body)
}

func pauseMsg(expType uint32) []byte {
	return sw.Message(sw.TypeExperimenter, 0, binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, onfExperimenter), expType))
}

// isMonitorRequest reports whether b is an ONF flow monitor request.
func isMonitorRequest(b []byte) bool {
	return b[1] == typeMultipartRequest && len(b) >= 24 && binary.BigEndian.Uint16(b[8:10]) == mpExperimenter &&
		binary.BigEndian.Uint32(b[16:20]) == onfExperimenter && binary.BigEndian.Uint32(b[20:24]) == onfFlowMonitor
}

func recvEvent(t *testing.T, m *FlowMonitor) FlowMonitorEvent {
	t.Helper()
	select {
	case ev, ok := <-m.C:
		if !ok {
			t.Fatal("monitor channel closed")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event")
	}
	return FlowMonitorEvent{}
}

// TestFlowMonitorFake: the initial flows come first even when updates
// follow the reply at once; updates, pause and resume keep their order;
// Close sends the cancel; the end of the connection closes C.
func TestFlowMonitorFake(t *testing.T) {
	cancels := make(chan []byte, 1)
	c, _ := dialFake(t, sw.Options{Handler: func(ss *sw.Session, b []byte) bool {
		switch {
		case isMonitorRequest(b):
			_ = ss.Send(append(append(append(monitorReply(xidOf(b), true, update(FlowAdded, 1, 1, nil)),
				monitorReply(xidOf(b), false, update(FlowAdded, 2, 2, nil))...),
				monitorReply(0, false, update(FlowDeleted, 3, 3, nil), abbrev(77))...),
				append(pauseMsg(onfFlowMonitorPaused), pauseMsg(onfFlowMonitorResumed)...)...))
			return true
		case b[1] == typeExperimenter:
			cancels <- b
			return true
		}
		return false
	}}, nil)
	m, err := c.MonitorFlows(testCtx(t), FlowMonitorRequest{Flags: MonitorInitial | MonitorAdd | MonitorDelete, TableID: AllTables})
	if err != nil {
		t.Fatal(err)
	}
	ev := recvEvent(t, m)
	if !ev.Initial || len(ev.Updates) != 2 || ev.Updates[1].Cookie != 2 {
		t.Fatalf("first event %+v", ev)
	}
	if ev = recvEvent(t, m); ev.Kind != FlowMonitorUpdates || len(ev.Updates) != 2 || ev.Updates[0].Cookie != 3 ||
		ev.Updates[1].Event != FlowAbbrev || ev.Updates[1].Xid != 77 {
		t.Fatalf("second event %+v", ev)
	}
	for _, k := range []FlowMonitorEventKind{FlowMonitorPaused, FlowMonitorResumed} {
		if ev = recvEvent(t, m); ev.Kind != k {
			t.Fatalf("event %+v, want %s", ev, k)
		}
	}
	if err := m.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if b := <-cancels; !bytes.Equal(b[8:], mustHex(t, "4f4e4600 0000074e 00000001")) {
		t.Fatalf("cancel %x", b)
	}
	if _, ok := <-m.C; ok {
		t.Fatal("C open after Close")
	}
	m2, err := c.MonitorFlows(testCtx(t), FlowMonitorRequest{TableID: AllTables})
	if err != nil || m2.ID() != 2 {
		t.Fatalf("second monitor %v, %v", m2, err)
	}
	_ = c.Close()
	for _, ev := range untilClosed(t, m2) {
		if ev.Kind != FlowMonitorUpdates {
			t.Fatalf("event after close %+v", ev)
		}
	}
}

// untilClosed returns the events m delivers until its channel closes, and
// fails the test if it is still open after 5 s.
func untilClosed(t *testing.T, m *FlowMonitor) []FlowMonitorEvent {
	t.Helper()
	var evs []FlowMonitorEvent
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-m.C:
			if !ok {
				return evs
			}
			evs = append(evs, ev)
		case <-deadline:
			t.Fatal("the monitor's channel is still open 5 s after the connection closed")
		}
	}
}

// TestFlowMonitorLost: a consumer that does not read loses updates beyond
// QueueLen and is told so; an undecodable update is reported as lost too.
func TestFlowMonitorLost(t *testing.T) {
	c, ss := dialFake(t, sw.Options{Handler: func(ss *sw.Session, b []byte) bool {
		if isMonitorRequest(b) {
			_ = ss.Send(monitorReply(xidOf(b), false))
			return true
		}
		return false
	}}, nil)
	m, err := c.MonitorFlows(testCtx(t), FlowMonitorRequest{TableID: AllTables, QueueLen: 2})
	if err != nil {
		t.Fatal(err)
	}
	const sent = 5
	for i := range sent {
		_ = ss.Send(monitorReply(0, false, update(FlowAdded, 1, uint64(i), nil)))
	}
	if err := c.Barrier(testCtx(t)); err != nil { // the reader went past all of them
		t.Fatal(err)
	}
	delivered, lost := 0, false
	for !lost || delivered+int(m.Dropped()) < sent {
		ev := recvEvent(t, m)
		delivered += len(ev.Updates)
		lost = lost || ev.Kind == FlowMonitorLost
	}
	if delivered+int(m.Dropped()) != sent || m.Dropped() < 2 {
		t.Fatalf("delivered %d + dropped %d, want %d with at least 2 dropped", delivered, m.Dropped(), sent)
	}
	bad := update(FlowAdded, 1, 1, nil)
	bad[3] = 9
	_ = ss.Send(monitorReply(0, false, bad))
	if ev := recvEvent(t, m); ev.Kind != FlowMonitorLost || !errors.Is(ev.Err, ErrMalformed) {
		t.Fatalf("event %+v, want lost (malformed)", ev)
	}
	if err := c.Barrier(testCtx(t)); err != nil {
		t.Fatalf("connection unusable after a bad update: %v", err)
	}
}

// TestFlowMonitorRefused: a switch that refuses the request with an error
// naming it, and Open vSwitch 3.1's way (an OFPT_ERROR of another version
// with garbage in it, then nothing): both fail fast and keep the connection.
func TestFlowMonitorRefused(t *testing.T) {
	garbage := ovsMsg(t, "flowmon-refused-ERROR-1")
	for _, tt := range []struct {
		name   string
		answer func(b []byte) []byte
		check  func(error) bool
	}{
		{"error", func(b []byte) []byte {
			return sw.Error(xidOf(b), openflow13.ET_BAD_REQUEST, openflow13.BRC_BAD_EXPERIMENTER, b)
		}, func(err error) bool {
			return errors.Is(err, &OFError{Type: openflow13.ET_BAD_REQUEST, Code: openflow13.BRC_BAD_EXPERIMENTER})
		}},
		{"ovs 3.1 garbage", func([]byte) []byte { return garbage }, func(err error) bool { return errors.Is(err, errNoMonitorReply) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := dialFake(t, sw.Options{Handler: func(ss *sw.Session, b []byte) bool {
				if isMonitorRequest(b) {
					_ = ss.Send(tt.answer(b))
					return true
				}
				return false
			}}, nil)
			start := time.Now()
			_, err := c.MonitorFlows(testCtx(t), FlowMonitorRequest{TableID: AllTables})
			if !tt.check(err) || time.Since(start) > 2*time.Second {
				t.Fatalf("err = %v after %v", err, time.Since(start))
			}
			if err := c.Barrier(testCtx(t)); err != nil {
				t.Fatalf("connection unusable after the refusal: %v", err)
			}
		})
	}
}

// TestParseFlowUpdatesFromOVS decodes the messages Open vSwitch 3.1 sent in
// TestOVSFlowMonitor (testdata/ovs/flowmon-*).
func TestParseFlowUpdatesFromOVS(t *testing.T) {
	nwDst := mustHex(t, "0001001280000a020800800018040a000001000000000000")
	tests := []struct {
		file string
		xid  uint32
		want FlowUpdate
	}{
		{"flowmon-initial-MULTIPART_REPLY-1", 6, FlowUpdate{Event: FlowAdded, TableID: 1, Cookie: 7, Priority: 9,
			MatchBytes: mustHex(t, "0001000c8000000400000003 00000000")}},
		{"flowmon-add-MULTIPART_REPLY-1", 0, FlowUpdate{Event: FlowAdded, TableID: 3, Cookie: 0x42, Priority: 5, MatchBytes: nwDst}},
		{"flowmon-modify-MULTIPART_REPLY-1", 0, FlowUpdate{Event: FlowModified, TableID: 3, Cookie: 0x42, Priority: 5, MatchBytes: nwDst}},
		{"flowmon-delete-MULTIPART_REPLY-1", 0, FlowUpdate{Event: FlowDeleted, Reason: openflow13.RR_DELETE, TableID: 3,
			Cookie: 0x42, Priority: 5, MatchBytes: nwDst}},
		{"flowmon-own-MULTIPART_REPLY-1", 0, FlowUpdate{Event: FlowAbbrev, Xid: 8}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b := ovsMsg(t, tt.file)
			part, err := parseMultipartReply(b)
			if err != nil || xidOf(b) != tt.xid || part.Type != mpExperimenter {
				t.Fatalf("part %+v xid %d, %v", part, xidOf(b), err)
			}
			ups, ok, err := flowMonitorPart(part.Body)
			if err != nil || !ok || len(ups) != 1 {
				t.Fatalf("updates %+v ok %v, %v", ups, ok, err)
			}
			u := ups[0]
			if u.Event != tt.want.Event || u.TableID != tt.want.TableID || u.Cookie != tt.want.Cookie || u.Reason != tt.want.Reason ||
				u.Priority != tt.want.Priority || u.Xid != tt.want.Xid || !bytes.Equal(u.MatchBytes, tt.want.MatchBytes) {
				t.Fatalf("update %+v\nwant %+v", u, tt.want)
			}
		})
	}
	for file, want := range map[string]FlowMonitorEventKind{
		"flowmon-mass-delete-EXPERIMENTER-1": FlowMonitorPaused, "flowmon-mass-delete-EXPERIMENTER-2": FlowMonitorResumed,
	} {
		if kind, ok, err := pauseSignal(ovsMsg(t, file)); !ok || err != nil || kind != want {
			t.Errorf("%s: %s %v %v, want %s", file, kind, ok, err, want)
		}
	}
	if _, ok, _ := pauseSignal(ovsMsg(t, "error-bundle-add-EXPERIMENTER-1")); ok {
		t.Error("a bundle control reply taken for a pause signal")
	}
}
