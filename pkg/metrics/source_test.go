package metrics

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/openflow"
	sw "github.com/ofctl-agent/ofctl-agent/pkg/openflow/ofswitchtest"
)

// markerSwitch stands for the agent's connection.
type markerSwitch struct{ Switch }

// OwnSwitch returns its own connection once it is up, the fallback before.
func TestOwnSwitch(t *testing.T) {
	fallback := &markerSwitch{}
	tests := []struct {
		name string
		addr func(t *testing.T) string
		own  bool
	}{
		{"switch up", func(t *testing.T) string { return sw.Start(t, sw.Options{}).Addr() }, true},
		{"no switch", func(t *testing.T) string { return "unix:" + filepath.Join(t.TempDir(), "none.mgmt") }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			get, stop, err := OwnSwitch(ctx, openflow.Config{Addr: tt.addr(t), Logger: quiet}, func() Switch { return fallback })
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(stop)
			deadline := time.Now().Add(5 * time.Second)
			for {
				_, own := get().(*openflow.Conn)
				if own == tt.own {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("OwnSwitch returns %T, want own connection %v", get(), tt.own)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if !tt.own && get() != Switch(fallback) {
				t.Errorf("without a connection OwnSwitch returns %T, want the fallback", get())
			}
		})
	}
	if _, _, err := OwnSwitch(context.Background(), openflow.Config{Addr: "bogus"}, nil); err == nil {
		t.Error("OwnSwitch accepted a bad address")
	}
}

// OwnSwitchAfter connects only once after is closed, or after maxWait if
// it never is; until then it answers with the fallback, and stop returns
// before it ever connected.
func TestOwnSwitchAfter(t *testing.T) {
	fallback := &markerSwitch{}
	tests := []struct {
		name    string
		maxWait time.Duration
		close   bool // close after (else wait for maxWait)
	}{
		{"after closed", time.Hour, true},
		{"after never closed", 300 * time.Millisecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := sw.Start(t, sw.Options{})
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			after := make(chan struct{})
			get, stop, err := OwnSwitchAfter(ctx, openflow.Config{Addr: s.Addr(), Logger: quiet},
				func() Switch { return fallback }, after, tt.maxWait)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(stop)
			if !tt.close {
				// Before maxWait: no connection, the fallback answers.
				if get() != Switch(fallback) {
					t.Fatalf("before maxWait OwnSwitchAfter returns %T, want the fallback", get())
				}
			} else {
				wait, cancelWait := context.WithTimeout(ctx, 200*time.Millisecond)
				ss, err := s.Next(wait)
				cancelWait()
				if err == nil {
					ss.Close()
					t.Fatal("OwnSwitchAfter connected before after was closed")
				}
				if get() != Switch(fallback) {
					t.Fatalf("before after is closed OwnSwitchAfter returns %T, want the fallback", get())
				}
				close(after)
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				if _, own := get().(*openflow.Conn); own {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("OwnSwitchAfter returns %T 10 s later, want its own connection", get())
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	t.Run("stopped before connecting", func(t *testing.T) {
		s := sw.Start(t, sw.Options{})
		_, stop, err := OwnSwitchAfter(context.Background(), openflow.Config{Addr: s.Addr(), Logger: quiet},
			nil, make(chan struct{}), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { stop(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("stop did not return before the connection started")
		}
	})
}
