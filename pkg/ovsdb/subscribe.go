package ovsdb

import "sync"

// Subscription delivers interface events in order, in batches: the first
// batch is always sent, even empty; it starts with the interfaces on the
// bridge when Subscribe was called, as Added, followed by any change queued
// since. Every later batch is the changes queued since the reader took the
// previous one. Its queue is unbounded: a slow reader delays
// nothing else and loses nothing, and a reader that falls behind gets the
// backlog at once (one bundle for many changes, not one each).
type Subscription struct {
	ch      chan []InterfaceEvent
	wake    chan struct{}
	done    chan struct{}
	exited  chan struct{}
	mu      sync.Mutex
	queue   []InterfaceEvent
	initial bool // the snapshot batch is not delivered yet
	once    sync.Once
	detach  func(*Subscription)
}

func newSubscription(detach func(*Subscription), initial []InterfaceEvent) *Subscription {
	s := &Subscription{
		ch:      make(chan []InterfaceEvent),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		exited:  make(chan struct{}),
		queue:   initial,
		initial: true,
		detach:  detach,
	}
	go s.pump()
	return s
}

// C returns the batch channel. It is closed after Close (or the Client's
// Close); events still queued then are dropped.
func (s *Subscription) C() <-chan []InterfaceEvent { return s.ch }

// Close stops the subscription and waits for its goroutine to end.
func (s *Subscription) Close() {
	s.once.Do(func() {
		if s.detach != nil {
			s.detach(s)
		}
		close(s.done)
	})
	<-s.exited
}

func (s *Subscription) push(evs []InterfaceEvent) {
	if len(evs) == 0 {
		return
	}
	s.mu.Lock()
	for _, ev := range evs {
		ev.Interface = ev.Interface.clone()
		s.queue = append(s.queue, ev)
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take removes and returns everything queued; ok is false when there is
// nothing to deliver.
func (s *Subscription) take() (batch []InterfaceEvent, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 && !s.initial {
		return nil, false
	}
	batch, s.queue, s.initial = s.queue, nil, false
	if batch == nil {
		batch = []InterfaceEvent{}
	}
	return batch, true
}

func (s *Subscription) pump() {
	defer close(s.exited)
	defer close(s.ch)
	for {
		batch, ok := s.take()
		if !ok {
			select {
			case <-s.wake:
				continue
			case <-s.done:
				return
			}
		}
		select {
		case s.ch <- batch:
		case <-s.done:
			return
		}
	}
}
