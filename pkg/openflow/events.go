package openflow

import (
	"sync"
	"sync/atomic"
)

// Subscription receives port-status events on C. The publisher never
// blocks: an event that finds C's buffer full is dropped and counted, so a
// slow subscriber loses events (and should re-read ports with PortDesc when
// Dropped grows) but never stalls the connection. C is closed when the
// source ends or Close is called.
type Subscription struct {
	C       <-chan PortStatus
	ch      chan PortStatus
	dropped atomic.Uint64
	h       *hub
}

// Dropped is the number of events lost because C was full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close unsubscribes and closes C. It is safe to call more than once.
func (s *Subscription) Close() { s.h.remove(s) }

// hub fans events out to subscriptions without blocking.
type hub struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
}

func newHub() *hub { return &hub{subs: make(map[*Subscription]struct{})} }

func (h *hub) subscribe(n int) *Subscription {
	ch := make(chan PortStatus, max(n, 1))
	s := &Subscription{C: ch, ch: ch, h: h}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(ch)
		return s
	}
	h.subs[s] = struct{}{}
	return s
}

func (h *hub) remove(s *Subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		close(s.ch)
	}
}

func (h *hub) publish(ev PortStatus) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.ch <- ev:
		default:
			s.dropped.Add(1)
		}
	}
}

func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		delete(h.subs, s)
		close(s.ch)
	}
}
