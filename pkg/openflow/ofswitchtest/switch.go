// Package ofswitchtest is a scriptable fake OpenFlow switch for unit tests:
// it listens on a unix socket, performs the switch side of the handshake,
// answers echo, features and barrier requests, and hands every other message
// to the test, which answers with raw bytes built by the helpers here.
// It speaks bytes, not libOpenflow types, so tests can send anything,
// malformed messages included. Use real Open vSwitch for integration tests.
package ofswitchtest

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// Message types used by the fake switch.
const (
	TypeHello           = 0
	TypeError           = 1
	TypeEchoRequest     = 2
	TypeEchoReply       = 3
	TypeExperimenter    = 4
	TypeFeaturesRequest = 5
	TypeFeaturesReply   = 6
	TypePortStatus      = 12
	TypeFlowMod         = 14
	TypeMultipartReq    = 18
	TypeMultipartReply  = 19
	TypeBarrierRequest  = 20
	TypeBarrierReply    = 21
)

// Options shape the fake switch.
type Options struct {
	// Version is the version of the switch's HELLO (default 4 = OpenFlow 1.3).
	Version uint8
	// Bitmap, if set, is sent as the HELLO version bitmap. Default: 1<<4
	// when Version is 4, none otherwise.
	Bitmap []uint32
	// DatapathID is returned in the features reply.
	DatapathID uint64
	// NoHandshake: accept the connection but send nothing at all.
	NoHandshake bool
	// TCP listens on 127.0.0.1 (Addr "tcp:127.0.0.1:PORT") instead of a
	// unix socket.
	TCP bool
	// Handler, if set, sees every message first, on the session's reader
	// goroutine (so its answers keep the order of the requests); returning
	// true means handled. Otherwise echo, features and barrier requests are
	// answered and the rest is queued for Recv.
	Handler func(ss *Session, msg []byte) bool
}

// Switch is a listening fake switch.
type Switch struct {
	t        testing.TB
	opts     Options
	ln       net.Listener
	addr     string
	sessions chan *Session
	wg       sync.WaitGroup
	mu       sync.Mutex
	all      []*Session
}

// Start listens on a fresh unix socket (or TCP port); everything is torn
// down in t.Cleanup.
func Start(t testing.TB, opts Options) *Switch {
	t.Helper()
	if opts.Version == 0 {
		opts.Version = 4
	}
	if opts.Bitmap == nil && opts.Version == 4 {
		opts.Bitmap = []uint32{1 << 4}
	}
	dir, err := os.MkdirTemp("", "ofsw")
	if err != nil {
		t.Fatal(err)
	}
	network, address := "unix", filepath.Join(dir, "sw.sock")
	if opts.TCP {
		network, address = "tcp", "127.0.0.1:0"
	}
	ln, err := net.Listen(network, address)
	if err != nil {
		t.Fatal(err)
	}
	s := &Switch{t: t, opts: opts, ln: ln, addr: network + ":" + ln.Addr().String(), sessions: make(chan *Session, 16)}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(func() {
		s.Close()
		_ = os.RemoveAll(dir)
	})
	return s
}

// Addr is the address to dial: "unix:PATH" or "tcp:127.0.0.1:PORT".
func (s *Switch) Addr() string { return s.addr }

// Close stops listening, closes every session and waits for goroutines.
func (s *Switch) Close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for _, ss := range s.all {
		ss.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Next returns the next accepted session.
func (s *Switch) Next(ctx context.Context) (*Session, error) {
	select {
	case ss := <-s.sessions:
		return ss, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *Switch) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		ss := &Session{nc: nc, opts: s.opts, recv: make(chan []byte, 1<<16),
			closed: make(chan struct{}), stop: make(chan struct{})}
		s.mu.Lock()
		s.all = append(s.all, ss)
		s.mu.Unlock()
		s.wg.Add(1)
		go func() { defer s.wg.Done(); ss.serve() }()
		select {
		case s.sessions <- ss:
		default:
		}
	}
}

// Session is one controller connection to the fake switch.
type Session struct {
	nc     net.Conn
	opts   Options
	silent atomic.Bool
	echoes atomic.Int64
	wmu    sync.Mutex
	recv   chan []byte
	closed chan struct{} // closed when serve returns
	stop   chan struct{} // closed by Close
	once   sync.Once
}

// SetSilent stops (true) or resumes answering echo requests.
func (ss *Session) SetSilent(v bool) { ss.silent.Store(v) }

// Echoes counts the echo requests received.
func (ss *Session) Echoes() int64 { return ss.echoes.Load() }

// Send writes raw bytes to the controller.
func (ss *Session) Send(b []byte) error {
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	_, err := ss.nc.Write(b)
	return err
}

// Close closes the session's socket.
func (ss *Session) Close() {
	ss.once.Do(func() {
		close(ss.stop)
		_ = ss.nc.Close()
	})
}

// Closed is closed when the controller's side ended the session (or Close).
func (ss *Session) Closed() <-chan struct{} { return ss.closed }

// Recv returns the next message not answered automatically (everything but
// HELLO, echo, features and barrier requests).
func (ss *Session) Recv(ctx context.Context) ([]byte, error) {
	select {
	case b := <-ss.recv:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-ss.closed:
		select {
		case b := <-ss.recv:
			return b, nil
		default:
		}
		return nil, io.EOF
	}
}

func (ss *Session) serve() {
	defer close(ss.closed)
	defer ss.Close()
	if !ss.opts.NoHandshake {
		if err := ss.Send(Hello(ss.opts.Version, ss.opts.Bitmap)); err != nil {
			return
		}
	}
	for {
		b, err := ReadMessage(ss.nc)
		if err != nil {
			return
		}
		if ss.opts.Handler != nil && ss.opts.Handler(ss, b) {
			continue
		}
		if ss.auto(b) {
			continue
		}
		select {
		case ss.recv <- b:
		case <-ss.stop:
			return
		}
	}
}

// auto answers the messages a switch answers by itself.
func (ss *Session) auto(b []byte) bool {
	xid := binary.BigEndian.Uint32(b[4:8])
	switch b[1] {
	case TypeHello:
		return true
	case TypeEchoRequest:
		ss.echoes.Add(1)
		if !ss.silent.Load() {
			r := append([]byte(nil), b...)
			r[1] = TypeEchoReply
			_ = ss.Send(r)
		}
		return true
	case TypeFeaturesRequest:
		body := make([]byte, 24)
		binary.BigEndian.PutUint64(body[0:8], ss.opts.DatapathID)
		body[12] = 254 // n_tables
		_ = ss.Send(Message(TypeFeaturesReply, xid, body))
		return true
	case TypeBarrierRequest:
		_ = ss.Send(Message(TypeBarrierReply, xid, nil))
		return true
	}
	return false
}

// ReadMessage reads one OpenFlow message (header + body).
func ReadMessage(r io.Reader) ([]byte, error) {
	h := make([]byte, 8)
	if _, err := io.ReadFull(r, h); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(h[2:4]))
	if n < 8 {
		return nil, errors.New("ofswitchtest: message length below 8")
	}
	b := make([]byte, n)
	copy(b, h)
	_, err := io.ReadFull(r, b[8:])
	return b, err
}
