package openflow

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// Backoff is the reconnection delay policy: Initial, then times Multiplier
// per failed attempt up to Max, each delay spread by ±Jitter (a fraction).
// The attempt count resets when a connection stayed up for at least Max.
type Backoff struct {
	Initial    time.Duration // default 100ms
	Max        time.Duration // default 10s
	Multiplier float64       // default 2
	Jitter     float64       // default 0.2; negative: none
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = 100 * time.Millisecond
	}
	if b.Max < b.Initial {
		b.Max = max(10*time.Second, b.Initial)
	}
	if b.Multiplier < 1 {
		b.Multiplier = 2
	}
	switch {
	case b.Jitter == 0:
		b.Jitter = 0.2
	case b.Jitter < 0:
		b.Jitter = 0
	case b.Jitter > 1:
		b.Jitter = 1
	}
	return b
}

// Delay is the wait before reconnection attempt n (0-based). rnd returns a
// float in [0,1).
func (b Backoff) Delay(n int, rnd func() float64) time.Duration {
	d := float64(b.Initial)
	for i := 0; i < n && d < float64(b.Max); i++ {
		d *= b.Multiplier
	}
	d = min(d, float64(b.Max))
	d *= 1 + b.Jitter*(2*rnd()-1)
	return time.Duration(d)
}

// ClientConfig configures a reconnecting Client.
type ClientConfig struct {
	Conn    Config
	Backoff Backoff
	// HookBackoff is the delay policy after connections whose OnConnect
	// failed: the switch answered, so a short delay would only repeat the
	// hook's work (a full replay) at that pace. Default: Backoff with Max
	// at least 10s.
	HookBackoff Backoff
	// OnConnect runs after every (re)connection, before Current returns the
	// connection; use it to replay state (e.g. install all flows in one
	// bundle). An error closes the connection and the Client retries.
	OnConnect func(ctx context.Context, c *Conn) error
	// OnStateChange, if set, is called (synchronously) on every change.
	OnStateChange func(State)
	Logger        *slog.Logger
}

// State is the observable state of a Client, for metrics.
type State struct {
	Connected  bool
	Connects   uint64 // successful connections (hook included), first one too
	Reconnects uint64 // successful connections after the first
	Failures   uint64 // dial, handshake or hook failures
	DatapathID uint64 // of the current or last connection
	LastError  error  // why the last connection or attempt ended
	Since      time.Time
}

// Client keeps one connection to a switch up: it dials, runs OnConnect,
// and redials with exponential backoff when the connection ends.
type Client struct {
	cfg  ClientConfig
	log  *slog.Logger
	hub  *hub
	rand func() float64

	mu      sync.Mutex
	cur     *Conn
	state   State
	running bool
	changed chan struct{} // closed and replaced on every state change
}

// NewClient checks cfg and returns a Client; Run starts it.
func NewClient(cfg ClientConfig) (*Client, error) {
	conn, err := cfg.Conn.withDefaults()
	if err != nil {
		return nil, err
	}
	cfg.Backoff = cfg.Backoff.withDefaults()
	if cfg.HookBackoff == (Backoff{}) {
		cfg.HookBackoff = cfg.Backoff
		cfg.HookBackoff.Max = max(cfg.HookBackoff.Max, 10*time.Second)
	}
	cfg.HookBackoff = cfg.HookBackoff.withDefaults()
	if cfg.Logger == nil {
		cfg.Logger = conn.Logger
	}
	cl := &Client{cfg: cfg, log: cfg.Logger.With("switch", conn.Addr), hub: newHub(),
		rand: rand.Float64, changed: make(chan struct{})}
	cl.cfg.Conn.portStatusSink = cl.hub.publish
	return cl, nil
}

// Run connects and reconnects until ctx ends, then closes the connection
// and returns ctx's error. It may be called once.
func (cl *Client) Run(ctx context.Context) error {
	cl.mu.Lock()
	if cl.running {
		cl.mu.Unlock()
		return errors.New("openflow: client already running")
	}
	cl.running = true
	cl.mu.Unlock()
	defer cl.hub.close()
	for attempt, hookFailures := 0, 0; ; {
		start := time.Now()
		err := cl.session(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Since(start) >= cl.cfg.Backoff.Max {
			attempt = 0
		}
		delay := cl.cfg.Backoff.Delay(attempt, cl.rand)
		attempt++
		var he *hookError
		switch {
		case errors.As(err, &he):
			delay = cl.cfg.HookBackoff.Delay(hookFailures, cl.rand)
			hookFailures++
		case !errors.As(err, new(*dialError)):
			hookFailures = 0 // the hook succeeded: the connection ended later
		}
		// The first failures and then one in 20 at Info: a switch that
		// stays away for hours must not fill the log at a short backoff.
		level := slog.LevelInfo
		if attempt > 3 && attempt%20 != 0 {
			level = slog.LevelDebug
		}
		cl.log.Log(ctx, level, "openflow: reconnecting", "in", delay, "attempt", attempt, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// session dials, runs the hook and waits for the connection to end.
func (cl *Client) session(ctx context.Context) error {
	c, err := Dial(ctx, cl.cfg.Conn)
	if err != nil {
		err = &dialError{err}
	} else if cl.cfg.OnConnect != nil {
		if herr := cl.cfg.OnConnect(ctx, c); herr != nil {
			_ = c.Close()
			err = &hookError{herr}
		}
	}
	if err != nil {
		cl.update(func(s *State) { s.Failures++; s.LastError = err })
		return err
	}
	cl.update(func(s *State) {
		if s.Connects > 0 {
			s.Reconnects++
		}
		s.Connects++
		s.Connected, s.DatapathID, s.Since = true, c.DatapathID(), time.Now()
		cl.cur = c
	})
	select {
	case <-c.Done():
		err = c.Err()
	case <-ctx.Done():
		_ = c.Close()
		err = ctx.Err()
	}
	cl.update(func(s *State) {
		s.Connected, s.LastError, s.Since = false, err, time.Now()
		cl.cur = nil
	})
	return err
}

func (cl *Client) update(f func(*State)) {
	cl.mu.Lock()
	f(&cl.state)
	st := cl.state
	close(cl.changed)
	cl.changed = make(chan struct{})
	cl.mu.Unlock()
	if cl.cfg.OnStateChange != nil {
		cl.cfg.OnStateChange(st)
	}
}

// dialError: a session that never connected (dial or handshake).
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// hookError: a session whose OnConnect failed.
type hookError struct{ err error }

func (e *hookError) Error() string {
	return prefix + "on-connect hook: " + strings.TrimPrefix(e.err.Error(), prefix)
}
func (e *hookError) Unwrap() error { return e.err }

// State returns a snapshot of the client's state.
func (cl *Client) State() State {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.state
}

// Current is the live connection (its hook done), or nil.
func (cl *Client) Current() *Conn {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.cur
}

// Wait returns the live connection, waiting for one until ctx ends.
func (cl *Client) Wait(ctx context.Context) (*Conn, error) {
	for {
		cl.mu.Lock()
		c, changed := cl.cur, cl.changed
		cl.mu.Unlock()
		if c != nil {
			return c, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// SubscribePortStatus subscribes to the port-status events of every
// connection the client makes (same non-blocking policy as
// Conn.SubscribePortStatus). C is closed when Run returns.
func (cl *Client) SubscribePortStatus(n int) *Subscription { return cl.hub.subscribe(n) }
