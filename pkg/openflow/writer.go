package openflow

import (
	"net"
	"sync"
	"time"
)

// writer batches encoded messages for one socket. Senders append to a
// pending buffer; one goroutine swaps it out and writes it with a single
// syscall, so while a write is in flight the next batch accumulates (many
// flow_mods per write, flushed as soon as the writer is free). The pending
// buffer is bounded by max: a sender that would exceed it waits until the
// writer takes the buffer (backpressure), except forced control messages
// (echo replies from the reader), which must never block.
type writer struct {
	nc      net.Conn
	max     int
	timeout time.Duration // write deadline per batch
	idle    time.Duration // idleRelease; a seam for tests

	mu      sync.Mutex
	pending []byte
	spare   []byte
	drained chan struct{} // closed (and replaced) whenever pending is taken
	err     error

	kick chan struct{}
}

func newWriter(nc net.Conn, max int, timeout time.Duration) *writer {
	return &writer{nc: nc, max: max, timeout: timeout, idle: idleRelease, drained: make(chan struct{}), kick: make(chan struct{}, 1)}
}

// enqueue appends b to the pending buffer. Unless force is set it waits
// while the buffer is full; it gives up with the connection's error when
// quit is closed.
func (w *writer) enqueue(b []byte, force bool, quit <-chan struct{}) error {
	return w.enqueueAll([][]byte{b}, force, quit)
}

// enqueueAll appends several messages, taking the lock once per batch that fits.
func (w *writer) enqueueAll(msgs [][]byte, force bool, quit <-chan struct{}) error {
	for len(msgs) > 0 {
		w.mu.Lock()
		if w.err != nil {
			err := w.err
			w.mu.Unlock()
			return err
		}
		n := 0
		for n < len(msgs) && (force || len(w.pending) == 0 || len(w.pending)+len(msgs[n]) <= w.max) {
			w.pending = append(w.pending, msgs[n]...)
			n++
		}
		drained := w.drained
		w.mu.Unlock()
		if n > 0 {
			w.wake()
			msgs = msgs[n:]
			continue
		}
		select {
		case <-drained:
		case <-quit:
			return w.failure(ErrClosed)
		}
	}
	return nil
}

func (w *writer) wake() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// failure returns the writer's error, or def when it has none yet.
func (w *writer) failure(def error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	return def
}

// fail makes every later enqueue return err.
func (w *writer) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

// take swaps out the pending buffer and wakes waiting senders.
func (w *writer) take() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	b := w.pending
	w.pending = w.spare[:0]
	w.spare = nil
	close(w.drained)
	w.drained = make(chan struct{})
	return b
}

// Buffers larger than keepIdle are dropped once the writer has had nothing
// to write for idleRelease: a full install leaves two of about
// MaxQueuedBytes each, held for nothing between changes.
const (
	idleRelease = time.Second
	keepIdle    = 64 << 10
)

// shrink drops the idle buffers larger than keepIdle.
func (w *writer) shrink() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) == 0 && cap(w.pending) > keepIdle {
		w.pending = nil
	}
	if cap(w.spare) > keepIdle {
		w.spare = nil
	}
}

// giveBack keeps b for reuse unless it grew much larger than the bound.
func (w *writer) giveBack(b []byte) {
	if cap(b) > 4*w.max {
		return
	}
	w.mu.Lock()
	w.spare = b[:0]
	w.mu.Unlock()
}

// run writes batches until quit is closed or a write fails; the error is
// returned to the connection, which shuts down.
func (w *writer) run(quit <-chan struct{}) error {
	idle := time.NewTimer(w.idle)
	defer idle.Stop()
	for {
		select {
		case <-w.kick:
		case <-idle.C:
			w.shrink()
			continue
		case <-quit:
			return nil
		}
		idle.Reset(w.idle)
		b := w.take()
		if len(b) == 0 {
			w.giveBack(b)
			continue
		}
		if err := w.nc.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
			return err
		}
		if _, err := w.nc.Write(b); err != nil {
			return err
		}
		w.giveBack(b)
	}
}
