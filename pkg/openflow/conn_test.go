package openflow

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/contiv/libOpenflow/openflow13"
	"github.com/contiv/libOpenflow/util"
	"go.uber.org/goleak"

	sw "github.com/ofctl-agent/ofctl-agent/pkg/openflow/ofswitchtest"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func xidOf(b []byte) uint32 { return binary.BigEndian.Uint32(b[4:8]) }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dialFake starts a fake switch, dials it and returns both ends.
func dialFake(t *testing.T, opts sw.Options, mod func(*Config)) (*Conn, *sw.Session) {
	t.Helper()
	s := sw.Start(t, opts)
	cfg := Config{Addr: s.Addr(), Logger: quiet()}
	if mod != nil {
		mod(&cfg)
	}
	c, err := Dial(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ss, err := s.Next(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return c, ss
}

// recvType returns the next message of type typ the fake switch queued.
func recvType(t *testing.T, ss *sw.Session, typ uint8) []byte {
	t.Helper()
	for {
		b, err := ss.Recv(testCtx(t))
		if err != nil {
			t.Fatalf("waiting for %s: %v", MsgTypeName(typ), err)
		}
		if b[1] == typ {
			return b
		}
	}
}

func flowMod(table uint8, priority uint16, cookie uint64) *openflow13.FlowMod {
	fm := openflow13.NewFlowMod()
	fm.TableId, fm.Priority, fm.Cookie = table, priority, cookie
	fm.Match.AddField(*openflow13.NewEthTypeField(0x0800))
	return fm
}

func TestDialHandshake(t *testing.T) {
	c, ss := dialFake(t, sw.Options{DatapathID: 0xfeedbeef01}, nil)
	if c.DatapathID() != 0xfeedbeef01 || c.Features().NTables != 254 {
		t.Fatalf("features %+v", c.Features())
	}
	setConfig := recvType(t, ss, openflow13.Type_SetConfig)
	if !bytes.Equal(setConfig[8:], []byte{0, 0, 0xff, 0xff}) {
		t.Errorf("set_config %x: want miss_send_len 0xffff so a service connection gets port status", setConfig)
	}
	async := recvType(t, ss, openflow13.Type_SetAsync)
	if binary.BigEndian.Uint32(async[8:]) != 0 || binary.BigEndian.Uint32(async[16:]) != 7 || binary.BigEndian.Uint32(async[24:]) != 0 {
		t.Errorf("set_async %x: want port status only", async)
	}
}

func TestDialTCP(t *testing.T) {
	c, _ := dialFake(t, sw.Options{TCP: true, DatapathID: 7}, nil)
	if !strings.HasPrefix(c.Addr(), "tcp:127.0.0.1:") || c.DatapathID() != 7 {
		t.Fatalf("addr %s dpid %d", c.Addr(), c.DatapathID())
	}
	if err := c.Barrier(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestDialFailures(t *testing.T) {
	tests := []struct {
		name  string
		opts  sw.Options
		setup func(ss *sw.Session)
		check func(t *testing.T, err error, ss *sw.Session)
	}{
		{"peer speaks OpenFlow 1.0", sw.Options{Version: 1}, nil, func(t *testing.T, err error, ss *sw.Session) {
			var ve *VersionError
			if !errors.As(err, &ve) || ve.PeerVersion != 1 || !strings.Contains(err.Error(), "OpenFlow 1.0") {
				t.Fatalf("err = %v, want a VersionError naming OpenFlow 1.0", err)
			}
			b := recvType(t, ss, typeError) // we tell the switch why
			if b[0] != 1 || binary.BigEndian.Uint16(b[8:10]) != 0 || binary.BigEndian.Uint16(b[10:12]) != 0 {
				t.Fatalf("hello failed message %x", b)
			}
		}},
		{"peer rejects our hello", sw.Options{NoHandshake: true}, func(ss *sw.Session) {
			_ = ss.Send(sw.Error(1, 0, 0, []byte("no 1.3 here")))
		}, func(t *testing.T, err error, _ *sw.Session) {
			var ve *VersionError
			if !errors.As(err, &ve) || !ve.Rejected {
				t.Fatalf("err = %v, want a rejected VersionError", err)
			}
		}},
		{"peer sends garbage first", sw.Options{NoHandshake: true}, func(ss *sw.Session) {
			_ = ss.Send(sw.Message(typePortStatus, 0, nil))
		}, func(t *testing.T, err error, _ *sw.Session) {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		}},
		{"peer silent", sw.Options{NoHandshake: true}, nil, func(t *testing.T, err error, _ *sw.Session) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want a deadline error", err)
			}
		}},
		{"peer closes", sw.Options{NoHandshake: true}, func(ss *sw.Session) { ss.Close() }, func(t *testing.T, err error, _ *sw.Session) {
			if !errors.Is(err, ErrPeerClosed) {
				t.Fatalf("err = %v, want ErrPeerClosed", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			s := sw.Start(t, tt.opts)
			defer s.Close()
			errc := make(chan error, 1)
			go func() {
				c, err := Dial(testCtx(t), Config{Addr: s.Addr(), Logger: quiet(), RequestTimeout: 300 * time.Millisecond})
				if err == nil {
					c.Close()
				}
				errc <- err
			}()
			ss, err := s.Next(testCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			if tt.setup != nil {
				tt.setup(ss)
			}
			err = <-errc
			if err == nil {
				t.Fatal("Dial succeeded")
			}
			tt.check(t, err, ss)
		})
	}
}

func TestDialMissingSocket(t *testing.T) {
	defer goleak.VerifyNone(t)
	_, err := Dial(testCtx(t), Config{Addr: "unix:" + t.TempDir() + "/nope.mgmt", Logger: quiet()})
	if !errors.Is(err, syscall.ENOENT) || !strings.Contains(err.Error(), "nope.mgmt") {
		t.Fatalf("err = %v, want ENOENT naming the socket", err)
	}
	if _, err := Dial(testCtx(t), Config{Addr: "bogus"}); err == nil {
		t.Fatal("bad address accepted")
	}
}

func TestEchoRequestsAnswered(t *testing.T) {
	_, ss := dialFake(t, sw.Options{}, nil)
	req := sw.Message(typeEchoRequest, 4242, []byte("ping-payload"))
	if err := ss.Send(req); err != nil {
		t.Fatal(err)
	}
	reply := recvType(t, ss, typeEchoReply)
	if xidOf(reply) != 4242 || !bytes.Equal(reply[8:], []byte("ping-payload")) {
		t.Fatalf("echo reply %x", reply)
	}
}

func TestKeepaliveKeepsIdleConnectionUp(t *testing.T) {
	c, ss := dialFake(t, sw.Options{}, func(cfg *Config) {
		cfg.EchoInterval, cfg.DeadInterval = 50*time.Millisecond, 500*time.Millisecond
	})
	time.Sleep(time.Second) // twice the dead interval
	if err := c.Err(); err != nil {
		t.Fatalf("idle connection died: %v", err)
	}
	if n := ss.Echoes(); n < 4 {
		t.Fatalf("%d echo requests in 1s with a 50ms echo interval", n)
	}
}

func TestDeadPeer(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := sw.Start(t, sw.Options{})
	defer s.Close()
	c, err := Dial(testCtx(t), Config{Addr: s.Addr(), Logger: quiet(), EchoInterval: 50 * time.Millisecond, DeadInterval: 250 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ss, _ := s.Next(testCtx(t))
	ss.SetSilent(true)
	start := time.Now()
	_, reqErr := c.Request(context.Background(), openflow13.NewEchoRequest()) // never answered
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("dead peer not detected")
	}
	if took := time.Since(start); took < 200*time.Millisecond || took > 2*time.Second {
		t.Errorf("detected after %s, want about the 250ms dead interval", took)
	}
	if !errors.Is(c.Err(), ErrDeadPeer) || !errors.Is(reqErr, ErrDeadPeer) {
		t.Fatalf("Err = %v, request err = %v, want ErrDeadPeer", c.Err(), reqErr)
	}
	if ss.Echoes() == 0 {
		t.Error("no echo request sent before declaring the peer dead")
	}
	if _, err := c.Send(openflow13.NewEchoRequest()); !errors.Is(err, ErrDeadPeer) {
		t.Errorf("Send after death: %v", err)
	}
}

func TestRequestTimeoutKeepsConnection(t *testing.T) {
	c, ss := dialFake(t, sw.Options{}, nil)
	ss.SetSilent(true)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Request(ctx, openflow13.NewEchoRequest())
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "OFPT_ECHO_REQUEST") {
		t.Fatalf("err = %v", err)
	}
	ss.SetSilent(false)
	if _, err := c.Request(testCtx(t), openflow13.NewEchoRequest()); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	pending := len(c.calls)
	c.mu.Unlock()
	if pending != 0 {
		t.Fatalf("%d calls left pending", pending)
	}
}

// mpHandler answers multipart requests with parts built by reply.
func mpHandler(reply func(req []byte) [][]byte) func(*sw.Session, []byte) bool {
	return func(ss *sw.Session, b []byte) bool {
		if b[1] != typeMultipartRequest {
			return false
		}
		for _, p := range reply(b) {
			_ = ss.Send(p)
		}
		return true
	}
}

func TestMultipartSpanningReplies(t *testing.T) {
	var flowReq []byte
	c, _ := dialFake(t, sw.Options{Handler: mpHandler(func(req []byte) [][]byte {
		x, typ := xidOf(req), binary.BigEndian.Uint16(req[8:10])
		switch typ {
		case openflow13.MultipartType_PortDesc:
			var parts [][]byte
			for i := range 3 {
				p := sw.Port{No: uint32(i + 1), Name: "p" + string(rune('1'+i)), HWAddr: []byte{2, 0, 0, 0, 0, byte(i)}}
				parts = append(parts, sw.MultipartReply(x, typ, i < 2, p.Bytes()))
			}
			return parts
		case openflow13.MultipartType_Flow:
			flowReq = req
			e := sw.FlowStatsEntry
			return [][]byte{
				sw.MultipartReply(x, typ, true, append(e(3, 1, 0x77, 10), e(3, 2, 0x77, 20)...)),
				sw.MultipartReply(x, typ, false, e(3, 3, 0x77, 30)),
			}
		}
		return nil
	})}, nil)
	ports, err := c.PortDesc(testCtx(t))
	if err != nil || len(ports) != 3 || ports[2].Name != "p3" || ports[2].No != 3 {
		t.Fatalf("ports %+v, %v", ports, err)
	}
	flows, err := c.FlowStats(testCtx(t), FlowStatsFilter{TableID: 3, Cookie: 0x77, CookieMask: 0xff})
	if err != nil || len(flows) != 3 || flows[2].Priority != 3 || flows[1].PacketCount != 20 {
		t.Fatalf("flows %+v, %v", flows, err)
	}
	body := flowReq[16:] // ofp_flow_stats_request
	if body[0] != 3 || binary.BigEndian.Uint64(body[16:24]) != 0x77 || binary.BigEndian.Uint64(body[24:32]) != 0xff ||
		binary.BigEndian.Uint32(body[4:8]) != openflow13.P_ANY {
		t.Fatalf("flow stats request body %x", body)
	}
}

func TestPeerClosesMidMultipart(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := sw.Start(t, sw.Options{Handler: func(ss *sw.Session, b []byte) bool {
		if b[1] != typeMultipartRequest {
			return false
		}
		_ = ss.Send(sw.MultipartReply(xidOf(b), openflow13.MultipartType_Flow, true, sw.FlowStatsEntry(0, 1, 1, 1)))
		ss.Close()
		return true
	}})
	defer s.Close()
	c, err := Dial(testCtx(t), Config{Addr: s.Addr(), Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.FlowStats(testCtx(t), FlowStatsFilter{TableID: AllTables})
	if !errors.Is(err, ErrPeerClosed) {
		t.Fatalf("err = %v, want ErrPeerClosed", err)
	}
	<-c.Done()
}

// rejectPriority answers flow_mods of the given priority with BAD_MATCH/BAD_FIELD.
func rejectPriority(prio uint16) func(*sw.Session, []byte) bool {
	return func(ss *sw.Session, b []byte) bool {
		if b[1] != typeFlowMod || binary.BigEndian.Uint16(b[30:32]) != prio {
			return false
		}
		_ = ss.Send(sw.Error(xidOf(b), openflow13.PET_BAD_MATCH, openflow13.BMC_BAD_FIELD, b[:min(64, len(b))]))
		return true
	}
}

func TestPipelineReportsFailingMessage(t *testing.T) {
	c, _ := dialFake(t, sw.Options{Handler: rejectPriority(13)}, nil)
	var msgs []util.Message
	for p := range uint16(20) {
		msgs = append(msgs, flowMod(2, p, 0xc0))
	}
	err := c.Pipeline(testCtx(t), msgs)
	var oe *OFError
	if !errors.As(err, &oe) {
		t.Fatalf("err = %v, want *OFError", err)
	}
	if len(unjoin(err)) != 1 || !oe.Known || oe.Request.Priority != 13 || oe.Request.TableID != 2 ||
		oe.CodeName() != "OFPBMC_BAD_FIELD" || !strings.Contains(err.Error(), "priority=13") {
		t.Fatalf("err = %v (%+v)", err, oe)
	}
	if err := c.Barrier(testCtx(t)); err != nil {
		t.Fatalf("second barrier reports again: %v", err)
	}
	if _, err := c.Send(flowMod(2, 13, 1)); err != nil {
		t.Fatal(err)
	}
	if err := c.Barrier(testCtx(t)); !errors.As(err, &oe) || oe.Request.Priority != 13 {
		t.Fatalf("Send + Barrier: %v", err)
	}
}

func TestLateErrorsBounded(t *testing.T) {
	c, _ := dialFake(t, sw.Options{Handler: rejectPriority(1)}, func(cfg *Config) { cfg.MaxLateErrors = 5 })
	for range 20 {
		if _, err := c.Send(flowMod(0, 1, 0)); err != nil {
			t.Fatal(err)
		}
	}
	err := c.Barrier(testCtx(t))
	if n := len(unjoin(err)); n != 5 {
		t.Fatalf("barrier returned %d errors, want the last 5", n)
	}
	if d := c.Stats().LateErrorsDropped; d != 15 {
		t.Fatalf("dropped %d, want 15", d)
	}
}

func TestPortStatusSubscribers(t *testing.T) {
	c, ss := dialFake(t, sw.Options{}, nil)
	fast, slow := c.SubscribePortStatus(100), c.SubscribePortStatus(1)
	for i := range 50 {
		_ = ss.Send(sw.PortStatus(openflow13.PR_ADD, sw.Port{No: uint32(i + 1), Name: "veth"}))
	}
	if err := c.Barrier(testCtx(t)); err != nil { // the reader is not stalled by slow
		t.Fatal(err)
	}
	for i := range 50 {
		ev := <-fast.C
		if ev.Port.No != uint32(i+1) || ev.ReasonName() != "add" || ev.Port.Name != "veth" {
			t.Fatalf("event %d: %+v", i, ev)
		}
	}
	if slow.Dropped() != 49 || fast.Dropped() != 0 {
		t.Fatalf("dropped: slow %d fast %d", slow.Dropped(), fast.Dropped())
	}
	_ = c.Close()
	if _, ok := <-fast.C; ok {
		t.Fatal("channel open after Close")
	}
}

func TestBadMessagesFromSwitch(t *testing.T) {
	c, ss := dialFake(t, sw.Options{}, nil)
	shortPS := sw.Message(typePortStatus, 0, []byte{1, 2, 3})
	for _, b := range [][]byte{
		shortPS,
		sw.Message(typeMultipartReply, 999, []byte{1}),
		sw.Message(99, 5, nil),
		sw.Message(typeError, 7, []byte{1}),
		sw.Message(typeBarrierReply, 12345, nil),
	} {
		_ = ss.Send(b)
	}
	if err := c.Barrier(testCtx(t)); err != nil {
		t.Fatalf("connection unusable after bad messages: %v", err)
	}
	_ = ss.Send([]byte{4, 0, 0, 2, 0, 0, 0, 0}) // length 2: framing lost
	<-c.Done()
	if !errors.Is(c.Err(), ErrMalformed) {
		t.Fatalf("Err = %v, want ErrMalformed", c.Err())
	}
}

func TestCloseDuringTraffic(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := sw.Start(t, sw.Options{})
	defer s.Close()
	c, err := Dial(testCtx(t), Config{Addr: s.Addr(), Logger: quiet(), MaxQueuedBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 3)
	for range 2 {
		go func() {
			for {
				if _, err := c.Send(flowMod(1, 1, 1)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	go func() {
		for {
			if err := c.Barrier(context.Background()); err != nil {
				errs <- err
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := <-errs; !errors.Is(err, ErrClosed) {
			t.Fatalf("sender got %v, want ErrClosed", err)
		}
	}
	if c.Stats().Sent == 0 {
		t.Fatal("nothing sent before Close")
	}
}
