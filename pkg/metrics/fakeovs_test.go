package metrics

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/contiv/libOpenflow/openflow13"

	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
	sw "github.com/ofctl-agent/ofctl-agent/pkg/openflow/ofswitchtest"
)

// fakePort is a port of fakeOVS with its 12 OpenFlow counters in wire
// order: rx/tx packets, rx/tx bytes, rx/tx dropped, rx/tx errors, ...
type fakePort struct {
	no   uint32
	name string
	c    [12]uint64
}

// fakeFlow is a flow of fakeOVS; inPort 0 means no match field.
type fakeFlow struct {
	table    uint8
	priority uint16
	cookie   uint64
	inPort   uint32
	packets  uint64
	drop     bool // no instructions
}

// fakeOVS answers the multipart requests of the OVS collectors from its
// ports and flows, in OpenFlow 1.3 bytes, behind a real openflow.Conn.
type fakeOVS struct {
	mu    sync.Mutex
	ports []fakePort
	flows []fakeFlow
	descs int             // PortDesc requests seen
	stall map[uint16]bool // multipart types left unanswered
	fail  map[uint16]bool // multipart types answered with an error
	srv   *sw.Switch
}

func newFakeOVS(t testing.TB, ports []fakePort, flows []fakeFlow) *fakeOVS {
	f := &fakeOVS{ports: ports, flows: flows, stall: map[uint16]bool{}, fail: map[uint16]bool{}}
	f.srv = sw.Start(t, sw.Options{Handler: f.handle})
	return f
}

// dial opens a real OpenFlow connection to the fake switch and returns it
// with its session.
func (f *fakeOVS) dial(t testing.TB) (*openflow.Conn, *sw.Session) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := openflow.Dial(ctx, openflow.Config{Addr: f.srv.Addr(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ss, err := f.srv.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return c, ss
}

func (f *fakeOVS) descCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.descs
}

func (f *fakeOVS) handle(ss *sw.Session, b []byte) bool {
	if b[1] != sw.TypeMultipartReq || len(b) < 16 {
		return false
	}
	xid, mp, body := binary.BigEndian.Uint32(b[4:8]), binary.BigEndian.Uint16(b[8:10]), b[16:]
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.stall[mp]:
		return true
	case f.fail[mp]:
		_ = ss.Send(sw.Error(xid, 1, 0, b)) // OFPET_BAD_REQUEST
		return true
	}
	var entries [][]byte
	switch mp {
	case openflow13.MultipartType_Port:
		for _, p := range f.ports {
			entries = append(entries, p.statsBytes())
		}
	case openflow13.MultipartType_PortDesc:
		f.descs++
		for _, p := range f.ports {
			entries = append(entries, sw.Port{No: p.no, Name: p.name}.Bytes())
		}
	case openflow13.MultipartType_Flow:
		cookie, mask := binary.BigEndian.Uint64(body[16:24]), binary.BigEndian.Uint64(body[24:32])
		for _, fl := range f.flows {
			if (body[0] == 0xff || body[0] == fl.table) && fl.cookie&mask == cookie&mask {
				entries = append(entries, fl.bytes())
			}
		}
	case openflow13.MultipartType_Table:
		for id := range 254 { // as Open vSwitch: every table but the hidden 254
			e := make([]byte, 24)
			e[0] = uint8(id)
			binary.BigEndian.PutUint32(e[4:8], uint32(f.tableFlows(uint8(id))))
			entries = append(entries, e)
		}
	default:
		return false
	}
	sendParts(ss, xid, mp, entries)
	return true
}

// sendParts sends entries as multipart replies of at most ~60 KB each (an
// OpenFlow message is at most 64 KiB), the way Open vSwitch splits them.
func sendParts(ss *sw.Session, xid uint32, mp uint16, entries [][]byte) {
	var part []byte
	for i, e := range entries {
		part = append(part, e...)
		if last := i == len(entries)-1; last || len(part)+len(entries[i+1]) > 60_000 {
			_ = ss.Send(sw.MultipartReply(xid, mp, !last, part))
			part = nil
		}
	}
	if len(entries) == 0 {
		_ = ss.Send(sw.MultipartReply(xid, mp, false, nil))
	}
}

func (f *fakeOVS) tableFlows(table uint8) int {
	n := 0
	for _, fl := range f.flows {
		if fl.table == table {
			n++
		}
	}
	return n
}

func (p fakePort) statsBytes() []byte {
	b := make([]byte, 112)
	binary.BigEndian.PutUint32(b[0:4], p.no)
	for i, v := range p.c {
		binary.BigEndian.PutUint64(b[8+8*i:], v)
	}
	return b
}

// bytes is the ofp_flow_stats entry: an OXM match with in_port if set,
// and a goto_table instruction unless the flow drops.
func (fl fakeFlow) bytes() []byte {
	match := []byte{0, 1, 0, 4, 0, 0, 0, 0}
	if fl.inPort != 0 {
		match = inPortMatch(fl.inPort)
	}
	var instr []byte
	if !fl.drop {
		instr = []byte{0, 1, 0, 8, fl.table + 1, 0, 0, 0}
	}
	n := 48 + len(match) + len(instr)
	b := make([]byte, 48, n)
	binary.BigEndian.PutUint16(b[0:2], uint16(n))
	b[2] = fl.table
	binary.BigEndian.PutUint16(b[12:14], fl.priority)
	binary.BigEndian.PutUint64(b[24:32], fl.cookie)
	binary.BigEndian.PutUint64(b[32:40], fl.packets)
	return append(append(b, match...), instr...)
}

// inPortMatch is an ofp_match holding OXM in_port=no, padded to 8 bytes.
func inPortMatch(no uint32) []byte {
	m := []byte{0, 1, 0, 12, 0x80, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(m[8:12], no)
	return m
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))
