package ovsdb

import "sync"

// Subscription delivers interface events in order. Its queue is unbounded: a
// slow reader delays nothing else and loses nothing.
type Subscription struct {
	ch     chan InterfaceEvent
	wake   chan struct{}
	done   chan struct{}
	exited chan struct{}
	mu     sync.Mutex
	queue  []InterfaceEvent
	once   sync.Once
	detach func(*Subscription)
}

func newSubscription(detach func(*Subscription), initial []InterfaceEvent) *Subscription {
	s := &Subscription{
		ch:     make(chan InterfaceEvent),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		exited: make(chan struct{}),
		queue:  initial,
		detach: detach,
	}
	go s.pump()
	return s
}

// C returns the event channel. It is closed after Close (or the Client's
// Close); events still queued then are dropped.
func (s *Subscription) C() <-chan InterfaceEvent { return s.ch }

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

func (s *Subscription) pump() {
	defer close(s.exited)
	defer close(s.ch)
	for {
		s.mu.Lock()
		var ev InterfaceEvent
		ok := len(s.queue) > 0
		if ok {
			ev = s.queue[0]
			s.queue[0] = InterfaceEvent{}
			s.queue = s.queue[1:]
		}
		s.mu.Unlock()
		if !ok {
			select {
			case <-s.wake:
				continue
			case <-s.done:
				return
			}
		}
		select {
		case s.ch <- ev:
		case <-s.done:
			return
		}
	}
}
