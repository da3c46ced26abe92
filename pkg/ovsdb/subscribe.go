package ovsdb

import "sync"

// Subscription delivers interface events in batches: the first batch is
// always sent, even empty; it starts with the interfaces on the bridge when
// Subscribe was called, as Added, followed by any change queued since. Every
// later batch is the changes queued since the reader took the previous one.
//
// The queue holds at most one event per interface (by UUID): a change of an
// interface whose previous event the reader has not taken yet replaces it,
// so a flapping interface costs O(1) memory however slow the reader. The
// merged event carries the latest state and takes the place of the latest
// change in the queue (the order of the distinct interfaces is the order of
// their last changes, as if the reader had looked only then), and a kind
// that tells the reader what changed for it: Added then Updated is Added,
// Added then Deleted is nothing, Updated then Deleted is Deleted, Deleted
// then back is Updated. Received is the earliest of the merged events'. A
// slow reader delays nothing else and loses no state, and gets the backlog
// at once (one bundle for many changes, not one each).
type Subscription struct {
	ch     chan []InterfaceEvent
	wake   chan struct{}
	done   chan struct{}
	exited chan struct{}
	once   sync.Once
	detach func(*Subscription)

	mu      sync.Mutex
	q       eventQueue
	initial bool // the snapshot batch is not delivered yet
}

func newSubscription(detach func(*Subscription), initial []InterfaceEvent) *Subscription {
	s := &Subscription{
		ch:      make(chan []InterfaceEvent),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		exited:  make(chan struct{}),
		initial: true,
		detach:  detach,
	}
	for _, ev := range initial {
		s.q.add(ev)
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
		s.q.add(ev)
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// queued is the number of events waiting and of queue slots used (tests).
func (s *Subscription) queued() (events, slots int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.q.live, len(s.q.evs)
}

// take removes and returns everything queued; ok is false when there is
// nothing to deliver.
func (s *Subscription) take() (batch []InterfaceEvent, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.q.live == 0 && !s.initial {
		return nil, false
	}
	s.initial = false
	return s.q.drain(), true
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

// eventQueue is an ordered queue with at most one live event per
// interface. A replaced event leaves a dead slot (Kind 0) behind; the slots
// are compacted when the dead ones outnumber the live ones, so the queue
// never holds more than about twice as many slots as interfaces.
type eventQueue struct {
	evs  []InterfaceEvent
	at   map[string]int // interface UUID -> slot of its live event
	live int
}

func (q *eventQueue) add(ev InterfaceEvent) {
	if q.at == nil {
		q.at = map[string]int{}
	}
	id := ev.Interface.UUID
	if i, ok := q.at[id]; ok {
		prev := q.evs[i]
		q.evs[i] = InterfaceEvent{}
		q.live--
		delete(q.at, id)
		var keep bool
		if ev, keep = merge(prev, ev); !keep {
			q.compact()
			return
		}
	}
	q.at[id] = len(q.evs)
	q.evs = append(q.evs, ev)
	q.live++
	q.compact()
}

// merge folds next into prev, an event of the same interface the reader
// has not seen; keep is false when the reader need not hear of it at all.
func merge(prev, next InterfaceEvent) (ev InterfaceEvent, keep bool) {
	if r := prev.Received; !r.IsZero() && (next.Received.IsZero() || r.Before(next.Received)) {
		next.Received = r
	}
	switch {
	case prev.Kind == Added && next.Kind == Deleted:
		return InterfaceEvent{}, false // came and went unseen
	case prev.Kind == Added:
		next.Kind = Added
	case prev.Kind == Deleted && next.Kind != Deleted:
		next.Kind = Updated // the reader saw it; it is back
	}
	return next, true
}

// compact drops the dead slots once they are the majority (and at least
// 64: compacting costs a pass over the queue).
func (q *eventQueue) compact() {
	if dead := len(q.evs) - q.live; dead <= q.live || dead < 64 {
		return
	}
	out := make([]InterfaceEvent, 0, 2*q.live)
	for _, ev := range q.evs {
		if ev.Kind != 0 {
			q.at[ev.Interface.UUID] = len(out)
			out = append(out, ev)
		}
	}
	q.evs = out
}

// drain returns the live events in order and empties the queue. The batch
// is never nil.
func (q *eventQueue) drain() []InterfaceEvent {
	out := make([]InterfaceEvent, 0, q.live)
	for _, ev := range q.evs {
		if ev.Kind != 0 {
			out = append(out, ev)
		}
	}
	q.evs, q.live = nil, 0
	clear(q.at)
	return out
}
