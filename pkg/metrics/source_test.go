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
