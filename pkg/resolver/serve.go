package resolver

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// listener is one network's sockets and the goroutines serving them.
type listener struct {
	addr   netip.AddrPort
	nw     atomic.Pointer[network]
	udp    *net.UDPConn
	tcp    *net.TCPListener
	ctx    context.Context // cancelled by close: abandons forwarded queries
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine of l
	// readers are the UDP readers: stopping (read deadline in the past)
	// lets each finish the query in hand before the socket is closed.
	readers  sync.WaitGroup
	stopping atomic.Bool

	mu     sync.Mutex
	conns  map[*net.TCPConn]struct{}
	closed bool
}

// ListenFreebind opens UDP and TCP sockets on addr with IP_FREEBIND, so
// that they can be opened before the address is on an interface (the
// gateway port may come up after the resolver): queries are received as
// soon as it is.
func ListenFreebind(addr netip.AddrPort) (*net.UDPConn, *net.TCPListener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_FREEBIND, 1)
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", addr.String())
	if err != nil {
		return nil, nil, err
	}
	ln, err := lc.Listen(context.Background(), "tcp4", addr.String())
	if err != nil {
		pc.Close()
		return nil, nil, err
	}
	return pc.(*net.UDPConn), ln.(*net.TCPListener), nil
}

// open binds addr and starts serving nw on it.
func (s *Server) open(addr netip.AddrPort, nw *network) (*listener, error) {
	udp, tcp, err := s.cfg.Listen(addr)
	if err != nil {
		return nil, err
	}
	l := &listener{addr: addr, udp: udp, tcp: tcp, conns: map[*net.TCPConn]struct{}{}}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.nw.Store(nw)
	for range s.cfg.UDPReaders {
		l.wg.Add(1)
		l.readers.Add(1)
		go s.serveUDP(l)
	}
	l.wg.Add(1)
	go s.serveTCP(l)
	return l, nil
}

// close stops l's goroutines and waits for them. The UDP readers finish
// the query in hand first (its answer is sent); forwarded queries still
// waiting for an upstream are abandoned without an answer, so that the
// client asks again (the next process, when the sockets are handed over).
func (l *listener) close() {
	l.stopping.Store(true)
	past := time.Unix(1, 0)
	_ = l.udp.SetReadDeadline(past)
	_ = l.tcp.SetDeadline(past)
	l.readers.Wait()
	l.mu.Lock()
	l.closed = true
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	l.cancel()
	l.udp.Close()
	l.tcp.Close()
	l.wg.Wait()
}

// exchange is one query being answered.
type exchange struct {
	nw    *network
	src   netip.AddrPort
	tcp   bool
	start time.Time
	req   *dns.Msg // nil when it could not be parsed
	fwd   bool     // sent upstream: its latency is the forwarded path's
}

// serveUDP reads queries until the socket is closed. Local answers are
// sent from this goroutine; forwarded ones from a goroutine each, bounded
// by the forwarder's in-flight caps.
func (s *Server) serveUDP(l *listener) {
	defer l.wg.Done()
	defer l.readers.Done()
	buf := make([]byte, maxQuery+1) // one more: a datagram that fills it is oversized
	sc := newScratch()
	for {
		n, src, err := l.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || l.stopping.Load() {
				return
			}
			s.note(dropEvent(dropShort), "dns: reading a UDP query", "addr", l.addr, "err", err)
			continue
		}
		x := exchange{nw: l.nw.Load(), src: netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), start: time.Now()}
		if n > maxQuery {
			x.nw.stats.queries.Add(1)
			s.dropped(&x, dropOversized)
			continue
		}
		out, fwd := s.receive(buf[:n], &x, sc)
		switch {
		case fwd:
			s.forwardUDP(l, x)
		case out != nil:
			_, _ = l.udp.WriteToUDPAddrPort(out, x.src)
		}
	}
}

// forwardUDP resolves x upstream in a goroutine of its own.
func (s *Server) forwardUDP(l *listener, x exchange) {
	if ok, why := s.fwd.acquire(x.src.Addr()); !ok {
		s.dropped(&x, why)
		return
	}
	l.wg.Add(1)
	go func(x *exchange) {
		defer l.wg.Done()
		defer s.fwd.release(x.src.Addr())
		resp, kind := s.forward(l.ctx, x)
		if l.ctx.Err() != nil {
			return // stopping: no SERVFAIL for a query the next process can answer
		}
		_, _ = l.udp.WriteToUDPAddrPort(s.finish(x, resp, kind, nil), x.src)
	}(&x)
}

// forward asks the upstreams; SERVFAIL when none answered.
func (s *Server) forward(ctx context.Context, x *exchange) (*dns.Msg, Kind) {
	x.fwd = true
	resp := s.fwd.resolve(ctx, x.req)
	if resp == nil {
		s.note(int(KindServFail), "dns: no upstream answered", "network", x.nw.name,
			"name", x.req.Question[0].Name, "upstreams", s.fwd.usable())
		return errorReply(x.req, dns.RcodeServerFailure), KindServFail
	}
	return relay(x.req, resp), KindForwarded
}

// receive answers one message: the packed answer (nil: nothing to send),
// or fwd, with x.req the parsed query, when the answer must come from
// upstream. The usual query takes the fast path (fast.go); everything else,
// and what the fast path cannot encode, the general one.
func (s *Server) receive(raw []byte, x *exchange, sc *scratch) (out []byte, fwd bool) {
	x.nw.stats.queries.Add(1)
	switch {
	case len(raw) < headerLen:
		s.dropped(x, dropShort)
		return nil, false
	case raw[2]&0x80 != 0: // QR: a response; answering it could start a loop
		s.dropped(x, dropResponse)
		return nil, false
	}
	var q query
	var f fastQuery
	if parseFast(raw, sc, &q, &f) {
		s.ans.decide(&q, x.nw, x.src.Addr(), &sc.res)
		if out, ok := s.ans.appendFast(sc.out, raw, &f, &sc.res, x.tcp); ok {
			s.record(x, sc.res.kind)
			return out, false
		}
	}
	return s.receiveGeneral(raw, x, sc)
}

// receiveGeneral is receive through miekg/dns's parser and encoder.
func (s *Server) receiveGeneral(raw []byte, x *exchange, sc *scratch) (out []byte, fwd bool) {
	req := new(dns.Msg)
	if err := req.Unpack(raw); err != nil {
		s.note(int(KindFormErr), "dns: malformed query", "network", x.nw.name, "src", x.src, "err", err)
		return s.finish(x, headerReply(raw, dns.RcodeFormatError), KindFormErr, sc.out), false
	}
	x.req = req
	q := queryOf(req)
	r := &sc.res
	s.ans.decide(&q, x.nw, x.src.Addr(), r)
	switch r.kind {
	case KindForwarded:
		return nil, true
	case KindRefused:
		s.note(int(KindRefused), "dns: query from outside the network refused", "network", x.nw.name, "src", x.src)
	case KindFormErr, KindNotImp:
		s.note(int(r.kind), "dns: query not supported", "network", x.nw.name, "src", x.src, "answer", r.kind.String())
	}
	return s.finish(x, s.ans.msg(req, r), r.kind, sc.out), false
}

// headerReply answers a message that could not be parsed past its header:
// its ID and opcode, no question, rcode.
func headerReply(raw []byte, rcode int) *dns.Msg {
	r := new(dns.Msg)
	r.Id = binary.BigEndian.Uint16(raw)
	r.Response = true
	r.Opcode = int(raw[2]>>3) & 0xF
	r.Rcode = rcode
	return r
}

// finish packs resp to x, truncated to what the client can receive (UDP:
// 512 bytes, or its EDNS buffer size up to maxUDPAnswer), and records it.
func (s *Server) finish(x *exchange, resp *dns.Msg, kind Kind, buf []byte) []byte {
	limit := dns.MaxMsgSize
	if !x.tcp {
		limit = dns.MinMsgSize
	}
	if x.req != nil {
		if opt := x.req.IsEdns0(); opt != nil {
			if resp.IsEdns0() == nil {
				resp.SetEdns0(maxUDPAnswer, opt.Do())
			}
			if !x.tcp {
				limit = min(max(int(opt.UDPSize()), dns.MinMsgSize), maxUDPAnswer)
			}
		}
	}
	resp.Compress = true
	resp.Truncate(limit)
	b, err := resp.PackBuffer(buf)
	if err != nil {
		s.note(int(KindServFail), "dns: packing an answer", "network", x.nw.name, "err", err)
		kind = KindServFail
		fail := &dns.Msg{MsgHdr: dns.MsgHdr{Id: resp.Id, Response: true, Rcode: dns.RcodeServerFailure}}
		b, _ = fail.Pack()
	}
	s.record(x, kind)
	return b
}

// record counts an answer sent to x and its latency.
func (s *Server) record(x *exchange, kind Kind) {
	x.nw.stats.answers[kind].Add(1)
	if x.fwd {
		s.metrics.latencyForward.Observe(time.Since(x.start).Seconds())
	} else {
		s.metrics.latencyLocal.Observe(time.Since(x.start).Seconds())
	}
}

func (s *Server) dropped(x *exchange, why drop) {
	x.nw.stats.drops[why].Add(1)
	s.note(dropEvent(why), "dns: message dropped", "network", x.nw.name, "src", x.src, "reason", dropNames[why])
}

// serveTCP accepts connections until the listener is closed.
func (s *Server) serveTCP(l *listener) {
	defer l.wg.Done()
	for {
		c, err := l.tcp.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || l.stopping.Load() {
				return
			}
			s.note(dropEvent(dropTCPConns), "dns: accepting a TCP connection", "addr", l.addr, "err", err)
			time.Sleep(10 * time.Millisecond) // e.g. out of file descriptors: do not spin
			continue
		}
		select {
		case s.tcpSlots <- struct{}{}:
		default:
			nw := l.nw.Load()
			nw.stats.queries.Add(1)
			s.dropped(&exchange{nw: nw, src: c.RemoteAddr().(*net.TCPAddr).AddrPort()}, dropTCPConns)
			c.Close()
			continue
		}
		if !l.track(c) {
			<-s.tcpSlots
			c.Close()
			return
		}
		l.wg.Add(1)
		go s.serveConn(l, c)
	}
}

func (l *listener) track(c *net.TCPConn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *listener) untrack(c *net.TCPConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	c.Close()
}

// serveConn answers the queries of one TCP connection in order (RFC 7766),
// until the client closes it, sends something unusable, or is idle.
func (s *Server) serveConn(l *listener, c *net.TCPConn) {
	defer l.wg.Done()
	defer func() { <-s.tcpSlots }()
	defer l.untrack(c)
	ap := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	src := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	buf := make([]byte, maxQuery)
	sc := newScratch()
	wait := tcpFirstRead
	for {
		_ = c.SetReadDeadline(time.Now().Add(wait))
		wait = tcpIdle
		if _, err := io.ReadFull(c, buf[:2]); err != nil {
			return
		}
		x := &exchange{nw: l.nw.Load(), src: src, tcp: true}
		n := int(binary.BigEndian.Uint16(buf))
		if n > maxQuery {
			x.nw.stats.queries.Add(1)
			s.dropped(x, dropOversized)
			return
		}
		if _, err := io.ReadFull(c, buf[:n]); err != nil {
			return
		}
		x.start = time.Now()
		b, fwd := s.receive(buf[:n], x, sc)
		if fwd {
			resp, kind := s.forwardTCP(l, x)
			if resp == nil {
				return
			}
			b = s.finish(x, resp, kind, sc.out)
		}
		if b == nil {
			continue
		}
		msg := append(binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(b)), uint16(len(b))), b...)
		_ = c.SetWriteDeadline(time.Now().Add(tcpFirstRead))
		if _, err := c.Write(msg); err != nil {
			return
		}
	}
}

// forwardTCP resolves x upstream on the connection's goroutine; nil when
// the in-flight caps are reached (the connection is then closed).
func (s *Server) forwardTCP(l *listener, x *exchange) (*dns.Msg, Kind) {
	if ok, why := s.fwd.acquire(x.src.Addr()); !ok {
		s.dropped(x, why)
		return nil, 0
	}
	defer s.fwd.release(x.src.Addr())
	return s.forward(l.ctx, x)
}
