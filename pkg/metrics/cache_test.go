package metrics

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingRead is a cache read that counts its calls, sleeps delay and
// returns a snapshot per name.
type countingRead struct {
	calls atomic.Int64
	delay time.Duration
	fail  atomic.Bool
}

func (r *countingRead) read(names []string) map[string]*snapshot {
	r.calls.Add(1)
	start := time.Now()
	time.Sleep(r.delay)
	out := map[string]*snapshot{}
	for _, n := range names {
		s := &snapshot{at: start, took: time.Since(start), res: spoofResult{}}
		if r.fail.Load() {
			s.err, s.res = errors.New("refused"), nil
		}
		out[n] = s
	}
	return out
}

func newTestCache(t *testing.T, maxAge, minPeriod, idleAfter time.Duration, r *countingRead) *cache {
	c := newCache(maxAge, minPeriod, idleAfter, r.read)
	t.Cleanup(c.close)
	return c
}

func TestCacheServesYoungValues(t *testing.T) {
	r := &countingRead{}
	c := newTestCache(t, time.Hour, time.Hour, time.Hour, r)
	first := c.get([]string{"ports"})["ports"]
	for range 5 {
		if got := c.get([]string{"ports"})["ports"]; got != first {
			t.Fatal("a young snapshot was read again")
		}
	}
	if n := r.calls.Load(); n != 1 {
		t.Errorf("%d reads for 6 scrapes within max age, want 1", n)
	}
	// Another collector is read on its own.
	c.get([]string{"ports", "tables"})
	if n := r.calls.Load(); n != 2 {
		t.Errorf("%d reads, want 2 (tables added)", n)
	}
}

func TestCacheReadsOldValues(t *testing.T) {
	r := &countingRead{}
	c := newTestCache(t, 30*time.Millisecond, time.Hour, time.Hour, r) // the background loop waits an hour
	first := c.get([]string{"ports"})["ports"]
	time.Sleep(50 * time.Millisecond)
	got := c.get([]string{"ports"})["ports"]
	if got == first || time.Since(got.at) > 30*time.Millisecond {
		t.Errorf("a scrape after max age got a snapshot %v old", time.Since(got.at))
	}
	r.fail.Store(true)
	time.Sleep(50 * time.Millisecond)
	if got := c.get([]string{"ports"})["ports"]; got.err == nil {
		t.Error("a failed read did not replace the old snapshot")
	}
}

// Concurrent scrapes of stale values wait for one read (single flight).
func TestCacheSingleFlight(t *testing.T) {
	r := &countingRead{delay: 50 * time.Millisecond}
	c := newTestCache(t, time.Hour, time.Hour, time.Hour, r)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s := c.get([]string{"ports", "spoof_guard"}); s["ports"] == nil || s["spoof_guard"] == nil {
				t.Error("a scrape got no snapshot")
			}
		}()
	}
	wg.Wait()
	if n := r.calls.Load(); n != 1 {
		t.Errorf("%d reads for 8 concurrent scrapes, want 1", n)
	}
}

// While scraped, the values are read in the background: a scrape gets
// values younger than max age without waiting for a read; without scrapes
// the reads stop.
func TestCacheBackgroundReads(t *testing.T) {
	const maxAge, read = 400 * time.Millisecond, 20 * time.Millisecond
	r := &countingRead{delay: read}
	c := newTestCache(t, maxAge, 30*time.Millisecond, 300*time.Millisecond, r)
	c.get([]string{"ports"})
	for range 10 {
		time.Sleep(70 * time.Millisecond)
		start := time.Now()
		s := c.get([]string{"ports"})["ports"]
		if waited := time.Since(start); waited >= read {
			t.Errorf("a scrape waited %v for a read", waited)
		}
		if age := time.Since(s.at); age > maxAge {
			t.Errorf("values %v old, max age %v", age, maxAge)
		}
	}
	if n := r.calls.Load(); n < 5 {
		t.Errorf("%d reads in 700ms of scrapes, want background reads", n)
	}
	time.Sleep(600 * time.Millisecond) // idle: the loop ends
	idle := r.calls.Load()
	time.Sleep(200 * time.Millisecond)
	if n := r.calls.Load(); n != idle {
		t.Errorf("%d reads while nobody scraped, want none", n-idle)
	}
	c.mu.Lock()
	polling := c.polling
	c.mu.Unlock()
	if polling {
		t.Error("the background loop still runs after idleAfter without scrapes")
	}
}

func TestCacheClose(t *testing.T) {
	r := &countingRead{}
	c := newTestCache(t, time.Hour, 10*time.Millisecond, time.Hour, r)
	c.get([]string{"ports"})
	c.close()
	time.Sleep(50 * time.Millisecond)
	n := r.calls.Load()
	time.Sleep(50 * time.Millisecond)
	if r.calls.Load() != n {
		t.Error("background reads after close")
	}
	c.get([]string{"ports"}) // still served
}

func TestCacheDisabled(t *testing.T) {
	r := &countingRead{}
	c := newTestCache(t, -1, time.Millisecond, time.Hour, r)
	for range 3 {
		c.get([]string{"ports"})
	}
	time.Sleep(20 * time.Millisecond)
	if n := r.calls.Load(); n != 3 {
		t.Errorf("%d reads for 3 scrapes without cache, want 3 (and none in the background)", n)
	}
}

func TestCachePeriod(t *testing.T) {
	c := newCache(5*time.Second, time.Second, time.Minute, nil)
	tests := []struct{ took, want time.Duration }{
		{0, time.Second},                          // at least MinPeriod
		{40 * time.Millisecond, time.Second},      // 20x the read is less
		{150 * time.Millisecond, 3 * time.Second}, // 20x the read
		{400 * time.Millisecond, 4 * time.Second}, // capped: values replaced before 5 s
		{3 * time.Second, 0},                      // reads back to back
	}
	for _, tt := range tests {
		if got := c.period(tt.took); got != tt.want {
			t.Errorf("period after a read of %v = %v, want %v", tt.took, got, tt.want)
		}
	}
}

// Through the OVS reader: a counter that changed in the switch shows in
// the scrapes within max age, and the exported age never exceeds max age.
// (That the reads happen in the background, not in a scrape, is
// TestCacheBackgroundReads.)
func TestOVSValuesAtMostMaxAgeOld(t *testing.T) {
	const maxAge = 300 * time.Millisecond
	f := newFakeOVS(t, testPorts(), testFlows())
	c, _ := f.dial(t)
	o := NewOVS(OVSConfig{Switch: func() Switch { return c }, Ports: testLabels, MaxAge: maxAge, MinPeriod: 20 * time.Millisecond, Logger: quiet})
	t.Cleanup(o.Close)
	vc1 := key(ns+"_port_receive_packets_total", port("vc1", "1", "blue", "10.100.1.10", "c1")...)
	if got := samples(t, o)[vc1]; got != 10 {
		t.Fatalf("vc1 received %v packets, want 10", got)
	}
	f.mu.Lock()
	f.ports[1].c[0] = 11
	f.mu.Unlock()
	changed := time.Now()
	for {
		s := samples(t, o)
		for _, coll := range Collectors() {
			if age := s[key(ns+"_scrape_collector_age_seconds", "collector", coll)]; age > maxAge.Seconds() {
				t.Fatalf("%s values %vs old, max age %v", coll, age, maxAge)
			}
		}
		if s[vc1] == 11 {
			break
		}
		if time.Since(changed) > maxAge+100*time.Millisecond {
			t.Fatalf("vc1's new counter not exported %v after the change (max age %v)", time.Since(changed), maxAge)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
