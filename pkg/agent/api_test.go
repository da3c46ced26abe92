package agent

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/agentapi"
)

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAPIAllocations: through the agent's API backend an allocation is
// listed with its owner, released by owner alone, and one the TTL ends is
// counted in Status and logged with its owner.
func TestAPIAllocations(t *testing.T) {
	var logs syncBuffer
	a, err := New(Config{NodeName: "ha", OVSDB: "unix:" + filepath.Join(t.TempDir(), "none.sock"),
		OpenFlow: "unix:" + filepath.Join(t.TempDir(), "none.mgmt"), TunnelPort: "gre0", Cluster: staticSource(t),
		AllocationTTL: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	a.ipam.SetView(view(100), nil) // as the loop does once it has read the ports
	b, ctx := a.API(), context.Background()
	for _, owner := range []string{"cni:gone/eth0", "cni:dead/eth0"} {
		if _, err := b.Allocate(ctx, agentapi.AllocateRequest{Network: "blue", Owner: owner}); err != nil {
			t.Fatal(err)
		}
	}
	l, err := b.Allocations(ctx, "blue", "cni:")
	if err != nil || len(l) != 2 || l[0].Owner != "cni:gone/eth0" || l[1].Owner != "cni:dead/eth0" || l[0].Expires.IsZero() {
		t.Fatalf("list: %+v, %v", l, err)
	}
	if err := b.Release(ctx, agentapi.ReleaseRequest{Network: "blue", Owner: "cni:gone/eth0"}); err != nil {
		t.Fatal(err)
	}
	if l, _ := b.Allocations(ctx, "blue", ""); len(l) != 1 || l[0].Owner != "cni:dead/eth0" {
		t.Fatalf("after the release by owner: %+v", l)
	}
	if st := a.Status().Addresses["blue"]; st.Pending != 1 || st.Expired != 0 {
		t.Fatalf("status before the TTL: %+v", st)
	}
	deadline := time.Now().Add(20 * time.Second)
	for st := a.Status().Addresses["blue"]; st.Pending != 0 || st.Expired != 1; st = a.Status().Addresses["blue"] {
		if time.Now().After(deadline) {
			t.Fatalf("status long after the TTL: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "address allocation expired without a port") || !strings.Contains(logs.String(), "owner=cni:dead/eth0") ||
		!strings.Contains(logs.String(), "ip="+l[1].IP.String()) {
		t.Errorf("log: %s", logs.String())
	}
}
