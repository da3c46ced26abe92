package openflow

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	sw "github.com/ofctl-agent/ofctl-agent/pkg/openflow/ofswitchtest"
)

// FlowStatsEach hands over the entries of each reply as it arrives: here
// the switch sends the last reply only after the caller has seen the
// first one's entries, which a reader of the whole reply would wait for
// forever.
func TestFlowStatsEachStreams(t *testing.T) {
	seenFirst := make(chan struct{})
	c, _ := dialFake(t, sw.Options{Handler: func(ss *sw.Session, b []byte) bool {
		if b[1] != typeMultipartRequest {
			return false
		}
		x, typ, e := xidOf(b), binary.BigEndian.Uint16(b[8:10]), sw.FlowStatsEntry
		_ = ss.Send(sw.MultipartReply(x, typ, true, append(e(3, 1, 0x77, 10), e(3, 2, 0x77, 20)...)))
		go func() {
			<-seenFirst
			_ = ss.Send(sw.MultipartReply(x, typ, false, e(3, 3, 0x77, 30)))
		}()
		return true
	}}, nil)
	var prios []uint16
	err := c.FlowStatsEach(testCtx(t), FlowStatsFilter{TableID: AllTables}, func(fs *FlowStats) error {
		prios = append(prios, fs.Priority)
		if len(prios) == 2 {
			close(seenFirst)
		}
		return nil
	})
	if err != nil || len(prios) != 3 || prios[2] != 3 {
		t.Fatalf("priorities %v, err %v", prios, err)
	}
}

// An error from the callback ends the request: it is returned, later
// replies are dropped and the connection keeps working.
func TestFlowStatsEachStopsOnError(t *testing.T) {
	c, _ := dialFake(t, sw.Options{Handler: mpHandler(func(req []byte) [][]byte {
		x, typ, e := xidOf(req), binary.BigEndian.Uint16(req[8:10]), sw.FlowStatsEntry
		return [][]byte{sw.MultipartReply(x, typ, true, e(3, 1, 0x77, 10)), sw.MultipartReply(x, typ, false, e(3, 2, 0x77, 20))}
	})}, nil)
	stop := errors.New("enough")
	calls := 0
	err := c.FlowStatsEach(testCtx(t), FlowStatsFilter{TableID: AllTables}, func(*FlowStats) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
	flows, err := c.FlowStats(testCtx(t), FlowStatsFilter{TableID: AllTables})
	if err != nil || len(flows) != 2 {
		t.Fatalf("next request: %d flows, %v", len(flows), err)
	}
}

// DumpFlowStats keeps every reply undecoded; Each then walks the entries of
// all of them, in order, as FlowStatsEach would have, and stops at an error
// from its callback. A malformed entry fails the dump itself.
func TestFlowDump(t *testing.T) {
	malformed := false
	c, _ := dialFake(t, sw.Options{Handler: mpHandler(func(req []byte) [][]byte {
		x, typ, e := xidOf(req), binary.BigEndian.Uint16(req[8:10]), sw.FlowStatsEntry
		last := e(4, 3, 0x78, 30)
		if malformed {
			last = last[:len(last)-8]
			binary.BigEndian.PutUint16(last[0:2], uint16(len(last)+8)) // says 8 more bytes than it has
		}
		return [][]byte{sw.MultipartReply(x, typ, true, append(e(3, 1, 0x77, 10), e(3, 2, 0x77, 20)...)),
			sw.MultipartReply(x, typ, false, last)}
	})}, nil)
	d, err := c.DumpFlowStats(testCtx(t), FlowStatsFilter{TableID: AllTables})
	if err != nil || d.Len() != 3 {
		t.Fatalf("dump: %v, err %v", d, err)
	}
	type seen struct {
		table uint8
		prio  uint16
		ck    uint64
	}
	var got []seen
	for range 2 { // a dump can be read more than once
		got = got[:0]
		if err := d.Each(func(fs *FlowStats) error {
			got = append(got, seen{fs.TableID, fs.Priority, fs.Cookie})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if want := []seen{{3, 1, 0x77}, {3, 2, 0x77}, {4, 3, 0x78}}; !slices.Equal(got, want) {
			t.Fatalf("entries %v, want %v", got, want)
		}
	}
	stop := errors.New("enough")
	calls := 0
	if err := d.Each(func(*FlowStats) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
	malformed = true
	if d, err := c.DumpFlowStats(testCtx(t), FlowStatsFilter{TableID: AllTables}); err == nil {
		t.Fatalf("malformed entry: dump of %d flows, no error", d.Len())
	}
}
