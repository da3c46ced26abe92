package openflow

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// FlowMonitorEventKind says what a FlowMonitorEvent carries.
type FlowMonitorEventKind uint8

// Flow monitor event kinds.
const (
	// FlowMonitorUpdates: Updates holds the changes of one message.
	FlowMonitorUpdates FlowMonitorEventKind = iota
	// FlowMonitorPaused: the switch stopped reporting changes because its
	// queue towards this connection grew too long; changes made from now
	// on until FlowMonitorResumed may go unreported.
	FlowMonitorPaused
	// FlowMonitorResumed: the switch reports changes again.
	FlowMonitorResumed
	// FlowMonitorLost: updates were lost here (Err says why: the queue for
	// a slow reader overflowed, or the switch sent an undecodable
	// message). Re-read the flows.
	FlowMonitorLost
)

var flowMonitorEventKindNames = [...]string{"updates", "paused", "resumed", "lost"}

func (k FlowMonitorEventKind) String() string {
	if int(k) < len(flowMonitorEventKindNames) {
		return flowMonitorEventKindNames[k]
	}
	return fmt.Sprintf("kind_%d", uint8(k))
}

// FlowMonitorEvent is what a FlowMonitor delivers on C.
type FlowMonitorEvent struct {
	Kind    FlowMonitorEventKind
	Updates []FlowUpdate
	// Initial marks the first event of a monitor started with
	// MonitorInitial: the flows that existed then (possibly none).
	Initial bool
	Err     error // FlowMonitorLost: why
	// Received is when the connection read the message (for
	// FlowMonitorLost: when updates were dropped). A dump requested later
	// sees the changes it reports.
	Received time.Time
}

// FlowMonitor delivers the flow changes reported by the switch on C, in
// order. The connection's reader never waits for the consumer: events
// queue up to FlowMonitorRequest.QueueLen updates, and beyond that they
// are dropped and replaced by one FlowMonitorLost event. C is closed when
// the monitor is closed or the connection ends.
//
// Open vSwitch reports changes per connection, not per monitor: with
// several monitors on one connection each receives every update.
type FlowMonitor struct {
	C <-chan FlowMonitorEvent

	id      uint32
	conn    *Conn
	ch      chan FlowMonitorEvent
	limit   int
	dropped atomic.Uint64

	mu      sync.Mutex
	queue   []FlowMonitorEvent
	queued  int // updates in queue
	wake    chan struct{}
	stop    chan struct{}
	stopped bool
}

// ID is the monitor's ID on its connection.
func (m *FlowMonitor) ID() uint32 { return m.id }

// Dropped is the number of updates lost because the consumer fell behind.
func (m *FlowMonitor) Dropped() uint64 { return m.dropped.Load() }

// monitorSet is a connection's flow monitors. Its zero value is ready.
type monitorSet struct {
	mu     sync.Mutex
	byID   map[uint32]*FlowMonitor
	lastID uint32
}

func (s *monitorSet) add(c *Conn, limit int) *FlowMonitor {
	ch := make(chan FlowMonitorEvent)
	m := &FlowMonitor{C: ch, conn: c, ch: ch, limit: limit, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byID == nil {
		s.byID = map[uint32]*FlowMonitor{}
	}
	s.lastID++
	m.id = s.lastID
	s.byID[m.id] = m
	return m
}

// remove reports whether m was registered.
func (s *monitorSet) remove(m *FlowMonitor) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byID[m.id] != m {
		return false
	}
	delete(s.byID, m.id)
	return true
}

// publish queues ev for every monitor.
func (s *monitorSet) publish(ev FlowMonitorEvent) bool {
	s.mu.Lock()
	ms := make([]*FlowMonitor, 0, len(s.byID))
	for _, m := range s.byID {
		ms = append(ms, m)
	}
	s.mu.Unlock()
	for _, m := range ms {
		m.push(ev)
	}
	return len(ms) > 0
}

// MonitorFlows starts a flow monitor (Open vSwitch's ONF extension for
// OpenFlow 1.3, see flowmon.go) and returns once the switch has accepted
// it. A switch without the extension refuses it with an *OFError. Without
// MonitorOwn, changes made by this connection's own flow_mods and bundles
// come as FlowAbbrev updates carrying only the xid.
func (c *Conn) MonitorFlows(ctx context.Context, req FlowMonitorRequest) (*FlowMonitor, error) {
	req, err := req.withDefaults()
	if err != nil {
		return nil, err
	}
	// Registered before the request is sent: asynchronous updates may
	// follow the reply before this call returns. They wait in the queue
	// until the pump starts, after the initial flows are queued first.
	m := c.monitors.add(c, req.QueueLen)
	bodies, err := c.fencedMultipart(ctx, mpExperimenter, flowMonitorBody(m.id, req))
	if err != nil {
		c.monitors.remove(m)
		return nil, wrap(err, "flow monitor %d", m.id)
	}
	var initial []FlowUpdate
	for _, b := range bodies {
		ups, ok, err := flowMonitorPart(b)
		if err == nil && !ok {
			err = malformed("flow monitor request answered with another experimenter reply")
		}
		if err != nil {
			c.monitors.remove(m)
			return nil, wrap(err, "flow monitor %d", m.id)
		}
		initial = append(initial, ups...)
	}
	m.mu.Lock()
	if req.Flags&MonitorInitial != 0 {
		first := FlowMonitorEvent{Kind: FlowMonitorUpdates, Updates: initial, Initial: true, Received: time.Now()}
		m.queue = append([]FlowMonitorEvent{first}, m.queue...)
	}
	m.mu.Unlock()
	go m.pump(c.quit)
	return m, nil
}

// multipartRequest is a multipart request of type mpType with body and xid.
func multipartRequest(mpType uint16, body []byte, xid uint32) []byte {
	req := make([]byte, 8+len(body))
	binary.BigEndian.PutUint16(req[0:2], mpType)
	copy(req[8:], body)
	b := newMessage(typeMultipartRequest, req)
	stamp(b, xid)
	return b
}

// errNoMonitorReply: the switch answered the barrier after a flow monitor
// request but not the request.
var errNoMonitorReply = errors.New("refused: no reply before the barrier that followed it (Open vSwitch 3.1 sends an undecodable error then)")

// fencedMultipart is multipart followed by a barrier: a request the switch
// drops, or answers with an error that names no request, fails when the
// barrier reply comes instead of waiting for the timeout.
func (c *Conn) fencedMultipart(ctx context.Context, mpType uint16, body []byte) ([][]byte, error) {
	xid := c.nextXid()
	b := multipartRequest(mpType, body, xid)
	cl := newCall()
	cl.multipart = true
	c.mu.Lock()
	if err := c.errLocked(); err != nil {
		c.mu.Unlock()
		return nil, errCallFailed(describe(b).String(), err)
	}
	c.calls[xid] = cl
	c.mu.Unlock()
	// An error that names no message we sent may be the refusal (its xid
	// is garbage): it is taken here rather than left for the next Barrier.
	err := c.barrier(ctx, [][]byte{b}, func(e *OFError, _ bool) bool { return !e.Known })
	select {
	case <-cl.done:
		if cl.err != nil {
			return nil, errCallFailed(describe(b).String(), cl.err)
		}
		var bodies [][]byte
		err := c.takeParts(cl, mpType, collect(&bodies))
		return bodies, err
	default:
	}
	c.mu.Lock()
	delete(c.calls, xid)
	c.mu.Unlock()
	if err == nil || !errors.Is(err, ErrClosed) && c.Err() == nil && ctx.Err() == nil {
		err = errors.Join(errNoMonitorReply, err)
	}
	return nil, errCallFailed(describe(b).String(), err)
}

// Close cancels the monitor on the switch (when the connection is still
// up) and closes C. It is safe to call more than once.
func (m *FlowMonitor) Close(ctx context.Context) error {
	if !m.conn.monitors.remove(m) {
		return nil
	}
	m.halt()
	if m.conn.Err() != nil {
		return nil
	}
	cancel := flowMonitorCancelBytes(m.id)
	xid := m.conn.nextXid()
	stamp(cancel, xid)
	err := m.conn.barrier(ctx, [][]byte{cancel}, func(e *OFError, _ bool) bool { return e.Xid == xid })
	if err != nil {
		return wrap(err, "cancel flow monitor %d", m.id)
	}
	return nil
}

// halt stops the pump, which closes C.
func (m *FlowMonitor) halt() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.stopped {
		m.stopped = true
		m.queue, m.queued = nil, 0
		close(m.stop)
	}
}

// push queues ev without blocking (reader goroutine).
func (m *FlowMonitor) push(ev FlowMonitorEvent) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return
	}
	if n := len(ev.Updates); m.queued+n > m.limit {
		m.dropped.Add(uint64(m.queued + n))
		m.queue, m.queued = m.queue[:0], 0
		ev = FlowMonitorEvent{Kind: FlowMonitorLost, Received: time.Now(),
			Err: fmt.Errorf("openflow: flow monitor %d: more than %d updates queued for a slow reader", m.id, m.limit)}
	}
	m.queue = append(m.queue, ev)
	m.queued += len(ev.Updates)
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// pump moves queued events to C until the monitor or connection ends.
func (m *FlowMonitor) pump(quit <-chan struct{}) {
	defer close(m.ch)
	for {
		m.mu.Lock()
		if len(m.queue) == 0 {
			m.mu.Unlock()
			select {
			case <-m.wake:
				continue
			case <-m.stop:
				return
			case <-quit:
				return
			}
		}
		ev := m.queue[0]
		m.queue[0] = FlowMonitorEvent{}
		m.queue = m.queue[1:]
		m.queued -= len(ev.Updates)
		m.mu.Unlock()
		select {
		case m.ch <- ev:
		case <-m.stop:
			return
		case <-quit:
			return
		}
	}
}

// handleFlowUpdates routes an asynchronous flow monitor reply to the
// monitors; it reports whether b was one.
func (c *Conn) handleFlowUpdates(b []byte) bool {
	part, err := parseMultipartReply(b)
	if err != nil || part.Type != mpExperimenter {
		return false
	}
	ups, ok, err := flowMonitorPart(part.Body)
	if !ok {
		return false
	}
	ev := FlowMonitorEvent{Kind: FlowMonitorUpdates, Updates: ups, Received: time.Now()}
	if err != nil {
		c.log.Warn("openflow: undecodable flow monitor update from switch", "err", err)
		ev = FlowMonitorEvent{Kind: FlowMonitorLost, Err: err, Received: ev.Received}
	}
	if !c.monitors.publish(ev) {
		c.log.Debug("openflow: flow monitor update without monitor", "xid", binary.BigEndian.Uint32(b[4:8]))
	}
	return true
}

// handlePauseSignal routes the flow monitor paused/resumed messages; it
// reports whether b was one.
func (c *Conn) handlePauseSignal(b []byte) bool {
	kind, ok, err := pauseSignal(b)
	if !ok {
		return false
	}
	if err != nil {
		c.log.Warn("openflow: undecodable flow monitor message from switch", "err", err)
		kind = FlowMonitorLost
	}
	c.log.Debug("openflow: flow monitor " + kind.String())
	c.monitors.publish(FlowMonitorEvent{Kind: kind, Err: err, Received: time.Now()})
	return true
}

// closeMonitors stops every monitor (the connection ended).
func (c *Conn) closeMonitors() {
	c.monitors.mu.Lock()
	ms := c.monitors.byID
	c.monitors.byID = nil
	c.monitors.mu.Unlock()
	for _, m := range ms {
		m.halt()
	}
}
