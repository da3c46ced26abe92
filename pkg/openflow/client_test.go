package openflow

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/contiv/libOpenflow/openflow13"
	"go.uber.org/goleak"

	sw "github.com/ofctl-agent/ofctl-agent/pkg/openflow/ofswitchtest"
)

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2, Jitter: 0.5}
	tests := []struct {
		attempt int
		rnd     float64
		want    time.Duration
	}{
		{0, 0.5, 100 * time.Millisecond},
		{1, 0.5, 200 * time.Millisecond},
		{3, 0.5, 800 * time.Millisecond},
		{4, 0.5, time.Second}, // capped
		{60, 0.5, time.Second},
		{0, 0, 50 * time.Millisecond}, // -50% jitter
		{4, 0.999999, 1499999 * time.Microsecond},
	}
	for _, tt := range tests {
		got := b.Delay(tt.attempt, func() float64 { return tt.rnd })
		if d := got - tt.want; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("Delay(%d, %v) = %s, want %s", tt.attempt, tt.rnd, got, tt.want)
		}
	}
	if d := (Backoff{}).withDefaults(); d.Initial != 100*time.Millisecond || d.Max != 10*time.Second || d.Multiplier != 2 || d.Jitter != 0.2 {
		t.Errorf("defaults %+v", d)
	}
}

func fastBackoff() Backoff {
	return Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Multiplier: 2, Jitter: 0.1}
}

// runClient runs cl until the test ends and checks Run's result.
func runClient(t *testing.T, cl *Client) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cl.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v", err)
		}
	})
}

func waitState(t *testing.T, cl *Client, cond func(State) bool) State {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if st := cl.State(); cond(st) {
			return st
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("state never reached: %+v", cl.State())
	return State{}
}

func TestClientReconnectsAndRunsHook(t *testing.T) {
	s := sw.Start(t, sw.Options{DatapathID: 42})
	var hooks atomic.Int32
	var changes atomic.Int32
	cl, err := NewClient(ClientConfig{
		Conn:    Config{Addr: s.Addr(), Logger: quiet()},
		Backoff: fastBackoff(),
		OnConnect: func(ctx context.Context, c *Conn) error {
			if c.DatapathID() != 42 {
				return errors.New("wrong switch")
			}
			hooks.Add(1)
			_, err := c.Send(flowMod(0, 1, 7)) // replay state on the fresh connection
			if err != nil {
				return err
			}
			return c.Barrier(ctx)
		},
		OnStateChange: func(State) { changes.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	runClient(t, cl)
	first, err := cl.Wait(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	ss1, _ := s.Next(testCtx(t))
	recvType(t, ss1, typeFlowMod)
	ss1.Close() // the switch goes away
	st := waitState(t, cl, func(s State) bool { return s.Connects == 2 && s.Connected })
	if st.Reconnects != 1 || hooks.Load() != 2 || st.DatapathID != 42 || !errors.Is(st.LastError, ErrPeerClosed) {
		t.Fatalf("state %+v, hooks %d", st, hooks.Load())
	}
	ss2, _ := s.Next(testCtx(t))
	recvType(t, ss2, typeFlowMod) // the hook replayed on the new connection
	if cur := cl.Current(); cur == nil || cur == first {
		t.Fatal("Current is not the new connection")
	}
	if changes.Load() < 3 {
		t.Fatalf("%d state changes reported", changes.Load())
	}
}

func TestClientRetriesFailingHook(t *testing.T) {
	s := sw.Start(t, sw.Options{})
	var calls atomic.Int32
	cl, err := NewClient(ClientConfig{
		Conn:    Config{Addr: s.Addr(), Logger: quiet()},
		Backoff: fastBackoff(),
		OnConnect: func(context.Context, *Conn) error {
			if calls.Add(1) == 1 {
				return errors.New("replay failed")
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	runClient(t, cl)
	st := waitState(t, cl, func(s State) bool { return s.Connected })
	if st.Failures != 1 || st.Connects != 1 || calls.Load() != 2 {
		t.Fatalf("state %+v, hook calls %d", st, calls.Load())
	}
}

func TestClientCancelledWhileRetrying(t *testing.T) {
	defer goleak.VerifyNone(t)
	cl, err := NewClient(ClientConfig{
		Conn:    Config{Addr: "unix:" + t.TempDir() + "/missing.mgmt", Logger: quiet()},
		Backoff: fastBackoff(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cl.Run(ctx) }()
	waitState(t, cl, func(s State) bool { return s.Failures >= 3 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v", err)
	}
	if st := cl.State(); st.Connected || st.Connects != 0 || st.LastError == nil {
		t.Fatalf("state %+v", st)
	}
	if err := cl.Run(context.Background()); err == nil {
		t.Fatal("second Run accepted")
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer wcancel()
	if _, err := cl.Wait(wctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v", err)
	}
}

func TestClientCancelledWhileConnected(t *testing.T) {
	defer goleak.VerifyNone(t)
	s := sw.Start(t, sw.Options{})
	defer s.Close()
	cl, err := NewClient(ClientConfig{Conn: Config{Addr: s.Addr(), Logger: quiet()}})
	if err != nil {
		t.Fatal(err)
	}
	sub := cl.SubscribePortStatus(4)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cl.Run(ctx) }()
	c, err := cl.Wait(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	<-c.Done()
	if !errors.Is(c.Err(), ErrClosed) || cl.Current() != nil {
		t.Fatalf("conn err %v", c.Err())
	}
	if _, ok := <-sub.C; ok {
		t.Fatal("client subscription open after Run returned")
	}
}

func TestClientPortStatusAcrossReconnects(t *testing.T) {
	s := sw.Start(t, sw.Options{})
	cl, err := NewClient(ClientConfig{Conn: Config{Addr: s.Addr(), Logger: quiet()}, Backoff: fastBackoff()})
	if err != nil {
		t.Fatal(err)
	}
	sub := cl.SubscribePortStatus(8)
	runClient(t, cl)
	for i := range 2 {
		ss, err := s.Next(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		waitState(t, cl, func(s State) bool { return s.Connected && s.Connects == uint64(i+1) })
		c := cl.Current()
		_ = ss.Send(sw.PortStatus(openflow13.PR_DELETE, sw.Port{No: uint32(10 + i)}))
		if err := c.Barrier(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if ev := <-sub.C; ev.Port.No != uint32(10+i) || ev.ReasonName() != "delete" {
			t.Fatalf("event %+v", ev)
		}
		ss.Close()
		<-c.Done()
	}
}

// TestClientBacksOffAFailingHook: a switch that answers but whose hook
// keeps failing is redialled at the growing HookBackoff pace, not at the
// short dial backoff (each hook run may be a full replay).
func TestClientBacksOffAFailingHook(t *testing.T) {
	s := sw.Start(t, sw.Options{})
	calls := make(chan time.Time, 64)
	cl, err := NewClient(ClientConfig{
		Conn:        Config{Addr: s.Addr(), Logger: quiet()},
		Backoff:     fastBackoff(),
		HookBackoff: Backoff{Initial: 10 * time.Millisecond, Max: 5 * time.Second, Multiplier: 2, Jitter: -1},
		OnConnect: func(context.Context, *Conn) error {
			calls <- time.Now()
			return errors.New("replay failed")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	runClient(t, cl)
	var at []time.Time
	for len(at) < 7 {
		select {
		case c := <-calls:
			at = append(at, c)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d hook calls", len(at))
		}
	}
	// Delays 10, 20, 40, 80, 160, 320 ms: the sixth gap is at least 320 ms
	// (the dial backoff alone would keep it near 50 ms).
	if gap := at[6].Sub(at[5]); gap < 320*time.Millisecond {
		t.Fatalf("sixth redial after a failed hook came %v after the previous one", gap)
	}
}
