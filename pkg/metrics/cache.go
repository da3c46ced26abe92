package metrics

import (
	"slices"
	"sync"
	"time"
)

// Defaults of the OVS values cache (OVSConfig).
const (
	// DefaultMaxAge is the stated bound on the age of the Open vSwitch
	// values /metrics serves: older ones are read again before answering.
	DefaultMaxAge = 5 * time.Second
	// DefaultMinPeriod is the shortest wait between two background reads.
	DefaultMinPeriod = time.Second
	// DefaultIdleAfter stops the background reads of a collector nobody
	// scraped for that long.
	DefaultIdleAfter = 5 * time.Minute
)

// pollCost bounds the share of Open vSwitch's time the background reads
// take (about 1/pollCost): after a read that took d, the next starts
// d*pollCost later (at least MinPeriod, at most what keeps every value
// younger than MaxAge).
const pollCost = 20

// pollSlack is kept between the age a value can reach before the next
// background read replaces it and MaxAge, so that a scrape never has to
// wait for Open vSwitch because of timer jitter.
const pollSlack = 200 * time.Millisecond

// snapshot is one read of Open vSwitch by one collector.
type snapshot struct {
	at   time.Time     // when the read started: the values are at least that recent
	took time.Duration // how long the read took
	err  error
	res  exposer // nil when err is set
}

// exposer writes a collector's families in the text format.
type exposer interface{ write(t *textWriter) }

// refresh is one read of some collectors, shared by every scrape that
// waits for it (single flight).
type refresh struct {
	names []string
	done  chan struct{}
}

// cache keeps the latest snapshot of each OVS collector. A scrape is served
// from it when the snapshot is at most maxAge old; otherwise it waits for a
// read (joining one in flight). While a collector is scraped, a background
// loop reads it again every period, so that scrapes find young values and
// never wait for Open vSwitch; the loop stops idleAfter the last scrape.
// With maxAge < 0 every scrape reads Open vSwitch itself and nothing runs
// in the background.
type cache struct {
	maxAge, minPeriod, idleAfter time.Duration
	read                         func(names []string) map[string]*snapshot // runs the named collectors

	mu       sync.Mutex
	snaps    map[string]*snapshot
	asked    map[string]time.Time // collector -> last scrape asking for it
	inflight []*refresh
	polling  bool
	closed   bool
	stop     chan struct{} // closed by close
}

func newCache(maxAge, minPeriod, idleAfter time.Duration, read func([]string) map[string]*snapshot) *cache {
	return &cache{maxAge: maxAge, minPeriod: minPeriod, idleAfter: idleAfter, read: read,
		snaps: map[string]*snapshot{}, asked: map[string]time.Time{}, stop: make(chan struct{})}
}

// get returns a snapshot of each named collector, at most maxAge old when
// the read succeeded in time.
func (c *cache) get(names []string) map[string]*snapshot {
	if c.maxAge < 0 {
		return c.read(names)
	}
	now := time.Now()
	c.mu.Lock()
	var stale []string
	for _, n := range names {
		c.asked[n] = now
		if s := c.snaps[n]; s == nil || now.Sub(s.at) > c.maxAge {
			stale = append(stale, n)
		}
	}
	wait := c.refreshLocked(stale)
	if !c.polling && !c.closed {
		c.polling = true
		go c.poll()
	}
	c.mu.Unlock()
	for _, r := range wait {
		<-r.done
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]*snapshot, len(names))
	for _, n := range names {
		out[n] = c.snaps[n]
	}
	return out
}

// refreshLocked returns the reads that bring names up to date: those in
// flight, and one it starts for the others. c.mu is held.
func (c *cache) refreshLocked(names []string) []*refresh {
	var wait []*refresh
	var start []string
	for _, n := range names {
		i := slices.IndexFunc(c.inflight, func(r *refresh) bool { return slices.Contains(r.names, n) })
		switch {
		case i < 0:
			start = append(start, n)
		case !slices.Contains(wait, c.inflight[i]):
			wait = append(wait, c.inflight[i])
		}
	}
	if len(start) == 0 {
		return wait
	}
	r := &refresh{names: start, done: make(chan struct{})}
	c.inflight = append(c.inflight, r)
	go func() {
		snaps := c.read(start)
		c.mu.Lock()
		for n, s := range snaps {
			if old := c.snaps[n]; old == nil || !s.at.Before(old.at) {
				c.snaps[n] = s
			}
		}
		c.inflight = slices.DeleteFunc(c.inflight, func(x *refresh) bool { return x == r })
		c.mu.Unlock()
		close(r.done)
	}()
	return append(wait, r)
}

// poll reads the collectors scraped within idleAfter again and again, a
// period apart, until none is or the cache is closed.
func (c *cache) poll() {
	var took time.Duration // of the last background read
	for {
		select {
		case <-time.After(c.period(took)):
		case <-c.stop:
		}
		names, ok := c.pollNames()
		if !ok {
			return
		}
		start := time.Now()
		c.mu.Lock()
		wait := c.refreshLocked(names)
		c.mu.Unlock()
		for _, r := range wait {
			<-r.done
		}
		took = time.Since(start)
	}
}

// pollNames returns the collectors scraped within idleAfter; false, and
// polling over, when there is none or the cache is closed.
func (c *cache) pollNames() ([]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var names []string
	now := time.Now()
	for n, at := range c.asked {
		if now.Sub(at) <= c.idleAfter {
			names = append(names, n)
		}
	}
	if c.closed || len(names) == 0 {
		c.polling = false
		return nil, false
	}
	slices.Sort(names)
	return names, true
}

// period is the wait after a background read that took took: pollCost
// times took, at least minPeriod, but short enough that the values it read
// are replaced before they are maxAge old.
func (c *cache) period(took time.Duration) time.Duration {
	p := max(pollCost*took, c.minPeriod)
	return max(min(p, c.maxAge-2*took-pollSlack), 0)
}

// close stops the background reads.
func (c *cache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		close(c.stop)
	}
}
