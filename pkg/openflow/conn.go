package openflow

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Conn is one OpenFlow 1.3 connection to a switch, after a successful
// handshake. It is safe for concurrent use. Three goroutines serve it: a
// reader (dispatches replies by xid, answers echo requests, publishes port
// status events; it never blocks on callers), a writer (batches queued
// messages into few syscalls) and a keepalive ticker.
type Conn struct {
	cfg      Config
	log      *slog.Logger
	nc       net.Conn
	w        *writer
	features Features

	xid      atomic.Uint32
	bundleID atomic.Uint32
	lastRecv atomic.Int64 // unix nanoseconds of the last message from the switch
	nSent    atomic.Uint64
	nRecv    atomic.Uint64

	mu          sync.Mutex
	calls       map[uint32]*call
	sent        sentRing
	late        []*OFError // errors of fire-and-forget messages, claimed by Barrier
	lateDropped uint64

	ports    *hub
	monitors monitorSet

	closeOnce sync.Once
	err       error         // why the connection ended; written before quit closes
	quit      chan struct{} // closed when shutdown starts
	done      chan struct{} // closed when every goroutine has exited
	wg        sync.WaitGroup
}

// call is a request waiting for its reply. The reader fills it and closes
// done; the waiter reads it only after done is closed.
type call struct {
	multipart bool
	parts     [][]byte      // multipart: the replies not yet taken by the waiter
	arrived   chan struct{} // multipart: signalled (capacity 1) when a reply is added to parts
	reply     []byte        // single reply
	err       error         // an OFPT_ERROR for this xid (*OFError) or a decode error
	// claim, if set, is called on completion with the late errors; those
	// it returns true for move to claimed (Barrier, bundle commit).
	claim   func(e *OFError, failed bool) bool
	claimed []error
	done    chan struct{}
}

func newCall() *call { return &call{done: make(chan struct{})} }

// Dial connects to cfg.Addr, negotiates OpenFlow 1.3 and asks for the
// features (datapath ID). ctx bounds the dial and handshake (and so does
// cfg.RequestTimeout); it does not bound the connection's lifetime.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	network, address, _ := splitAddr(cfg.Addr)
	hctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
	defer cancel()
	nc, err := cfg.DialContext(hctx, network, address)
	if err != nil {
		return nil, fmt.Errorf("openflow: %w", err) // net names the address
	}
	c := &Conn{
		cfg: cfg, log: cfg.Logger.With("switch", cfg.Addr), nc: nc,
		calls: make(map[uint32]*call), sent: newSentRing(cfg.SentHistory), ports: newHub(),
		quit: make(chan struct{}), done: make(chan struct{}),
	}
	c.w = newWriter(nc, cfg.MaxQueuedBytes, cfg.DeadInterval)
	rd := &connReader{nc: nc}
	br := bufio.NewReaderSize(rd, 64<<10)
	if err := c.handshake(hctx, br); err != nil {
		_ = nc.Close()
		return nil, wrap(err, "handshake with %s", cfg.Addr)
	}
	rd.timeout = cfg.DeadInterval
	c.lastRecv.Store(time.Now().UnixNano())
	c.start(br)
	c.log.Debug("openflow connected", "dpid", fmt.Sprintf("%016x", c.features.DatapathID))
	return c, nil
}

// connReader refreshes the read deadline before every read once timeout is
// set, so a read blocks at most timeout: that is the dead-peer detection.
type connReader struct {
	nc      net.Conn
	timeout time.Duration
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.timeout > 0 {
		if err := r.nc.SetReadDeadline(time.Now().Add(r.timeout)); err != nil {
			return 0, err
		}
	}
	return r.nc.Read(p)
}

func (c *Conn) nextXid() uint32 {
	for {
		if x := c.xid.Add(1); x != 0 {
			return x
		}
	}
}

// handshake exchanges HELLOs, reads the FEATURES_REPLY and configures the
// asynchronous messages, synchronously, bounded by ctx.
func (c *Conn) handshake(ctx context.Context, br *bufio.Reader) error {
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.nc.SetDeadline(dl)
	}
	defer func() { _ = c.nc.SetDeadline(time.Time{}) }()
	fail := func(what string, err error) error {
		if isTimeout(err) { // the socket deadline comes from ctx only
			if cause := context.Cause(ctx); cause != nil {
				return wrap(cause, "%s", what)
			}
			return wrap(context.DeadlineExceeded, "%s", what)
		}
		return wrap(peerEOF(err), "%s", what)
	}
	if err := c.exchangeHello(br, fail); err != nil {
		return err
	}
	if _, err := c.nc.Write(c.stamped(typeFeaturesRequest)); err != nil {
		return fail("sending features request", err)
	}
	if err := c.handshakeWait(br, typeFeaturesReply, fail); err != nil {
		return err
	}
	// A service connection (the bridge's .mgmt socket) gets asynchronous
	// messages only after a nonzero miss_send_len; then ask for port status
	// only (no packet-in, no flow-removed) and confirm with a barrier.
	cfgMsgs := append(asyncConfigBytes(c.nextXid(), c.nextXid()), c.stamped(typeBarrierRequest)...)
	if _, err := c.nc.Write(cfgMsgs); err != nil {
		return fail("sending async config", err)
	}
	return c.handshakeWait(br, typeBarrierReply, fail)
}

// stamped is an empty message of type typ with a fresh xid.
func (c *Conn) stamped(typ uint8) []byte {
	b := newMessage(typ, nil)
	stamp(b, c.nextXid())
	return b
}

// exchangeHello sends our HELLO and checks the switch's.
func (c *Conn) exchangeHello(br *bufio.Reader, fail func(string, error) error) error {
	hello, err := helloBytes()
	if err != nil {
		return err
	}
	stamp(hello, c.nextXid())
	if _, err := c.nc.Write(hello); err != nil {
		return fail("sending hello", err)
	}
	b, err := readFrame(br)
	if err != nil {
		return fail("reading hello", err)
	}
	c.saw(b)
	if err := checkHello(b); err != nil {
		if ve := (*VersionError)(nil); errors.As(err, &ve) && !ve.Rejected {
			_, _ = c.nc.Write(helloFailedBytes(ve.PeerVersion))
		}
		return err
	}
	return nil
}

// handshakeWait reads messages until one of type want, answering echo
// requests; an OFPT_ERROR fails the handshake.
func (c *Conn) handshakeWait(br *bufio.Reader, want uint8, fail func(string, error) error) error {
	for {
		b, err := readFrame(br)
		if err != nil {
			return fail("waiting for "+MsgTypeName(want), err)
		}
		c.saw(b)
		if done, err := c.handshakeMsg(b, want); done || err != nil {
			return err
		}
	}
}

// saw passes a received message to the test hook.
func (c *Conn) saw(b []byte) {
	if c.cfg.recvHook != nil {
		c.cfg.recvHook(b)
	}
}

// checkHello validates the switch's first message.
func checkHello(b []byte) error {
	switch b[1] {
	case typeHello:
		v, bitmap, err := parseHello(b)
		if err != nil {
			return err
		}
		return negotiate(v, bitmap)
	case typeError:
		e, err := parseError(b)
		if err != nil {
			return err
		}
		if e.Type == 0 { // OFPET_HELLO_FAILED
			return &VersionError{PeerVersion: b[0], Rejected: true}
		}
		return e
	}
	return malformed("expected OFPT_HELLO, got %s", MsgTypeName(b[1]))
}

// handshakeMsg handles one message while waiting for a message of type want.
func (c *Conn) handshakeMsg(b []byte, want uint8) (bool, error) {
	switch b[1] {
	case want:
		if want != typeFeaturesReply {
			return true, nil
		}
		f, err := parseFeatures(b)
		c.features = f
		return true, err
	case typeEchoRequest:
		r := bytes.Clone(b)
		r[1] = typeEchoReply
		_, err := c.nc.Write(r)
		return false, err
	case typeError:
		e, err := parseError(b)
		if err != nil {
			return true, err
		}
		return true, e
	}
	return false, nil
}

func (c *Conn) start(br *bufio.Reader) {
	c.wg.Add(3)
	go func() { defer c.wg.Done(); c.fail(c.readLoop(br)) }()
	go func() {
		defer c.wg.Done()
		if err := c.w.run(c.quit); err != nil {
			c.fail(c.writeErr(err))
		}
	}()
	go func() { defer c.wg.Done(); c.keepalive() }()
	go func() {
		c.wg.Wait()
		c.ports.close()
		c.closeMonitors()
		close(c.done)
	}()
}

// fail starts the shutdown once: records err, closes the socket (which
// stops the reader and writer) and quit (which stops the rest and wakes
// every waiter).
func (c *Conn) fail(err error) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		c.w.fail(err)
		_ = c.nc.Close()
		close(c.quit)
		if !errors.Is(err, ErrClosed) {
			c.log.Warn("openflow connection lost", "err", err)
		}
	})
}

// Close closes the connection and waits for its goroutines to exit.
// Pending requests fail with ErrClosed.
func (c *Conn) Close() error {
	c.fail(ErrClosed)
	<-c.done
	return nil
}

// Done is closed when the connection has ended and its goroutines exited.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err says why the connection ended (ErrClosed after Close, ErrDeadPeer,
// ErrPeerClosed, ...), nil while it is up.
func (c *Conn) Err() error {
	select {
	case <-c.quit:
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.err
	default:
		return nil
	}
}

// DatapathID is the switch's datapath ID from the features reply.
func (c *Conn) DatapathID() uint64 { return c.features.DatapathID }

// Features is the switch's features reply.
func (c *Conn) Features() Features { return c.features }

// Addr is the address the connection was dialed with.
func (c *Conn) Addr() string { return c.cfg.Addr }

// ConnStats counts a connection's traffic.
type ConnStats struct {
	Sent, Received    uint64 // messages
	LateErrorsDropped uint64 // errors of fire-and-forget messages dropped unclaimed
}

// Stats returns the connection's counters.
func (c *Conn) Stats() ConnStats {
	c.mu.Lock()
	dropped := c.lateDropped
	c.mu.Unlock()
	return ConnStats{Sent: c.nSent.Load(), Received: c.nRecv.Load(), LateErrorsDropped: dropped}
}

// SubscribePortStatus returns a subscription to port-status events with a
// buffer of n (at least 1). Delivery never blocks the connection: when the
// buffer is full the event is dropped and counted in Dropped (re-read the
// ports with PortDesc then). The channel is closed when the connection ends
// or the subscription is closed.
func (c *Conn) SubscribePortStatus(n int) *Subscription { return c.ports.subscribe(n) }

// readLoop reads and dispatches until the socket fails; it returns the reason.
func (c *Conn) readLoop(br *bufio.Reader) error {
	for {
		b, err := readFrame(br)
		if err != nil {
			return c.readErr(err)
		}
		c.lastRecv.Store(time.Now().UnixNano())
		c.nRecv.Add(1)
		c.saw(b)
		if err := c.dispatch(b); err != nil {
			return err
		}
	}
}

// readErr turns a read failure into the connection's error.
func (c *Conn) readErr(err error) error {
	select {
	case <-c.quit: // closed locally: keep the recorded reason
		return ErrClosed
	default:
	}
	switch {
	case isTimeout(err):
		return fmt.Errorf("%w: %s sent nothing for %s", ErrDeadPeer, c.cfg.Addr, c.cfg.DeadInterval)
	case errors.Is(err, ErrMalformed):
		return err
	}
	return wrap(peerEOF(err), "read from %s", c.cfg.Addr)
}

// writeErr turns a write failure into the connection's error.
func (c *Conn) writeErr(err error) error {
	if isTimeout(err) {
		return fmt.Errorf("%w: %s did not read for %s", ErrDeadPeer, c.cfg.Addr, c.cfg.DeadInterval)
	}
	return wrap(peerEOF(err), "write to %s", c.cfg.Addr)
}

// peerEOF marks the errors that mean the switch closed the connection.
func peerEOF(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return fmt.Errorf("%w: %w", ErrPeerClosed, err)
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// keepalive sends an echo request when the switch has been silent for
// EchoInterval. Dead-peer detection itself is the reader's deadline.
func (c *Conn) keepalive() {
	t := time.NewTicker(max(c.cfg.EchoInterval/4, time.Millisecond))
	defer t.Stop()
	var lastEcho time.Time
	for {
		select {
		case <-c.quit:
			return
		case <-t.C:
		}
		silent := time.Since(time.Unix(0, c.lastRecv.Load()))
		if silent < c.cfg.EchoInterval || time.Since(lastEcho) < c.cfg.EchoInterval {
			continue
		}
		lastEcho = time.Now()
		_ = c.w.enqueue(c.stamped(typeEchoRequest), true, c.quit)
	}
}
