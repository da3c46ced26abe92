package agent

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// fakePublisher records what the agent asks to publish.
type fakePublisher struct {
	mu   sync.Mutex
	ran  bool
	last []endpoint.Endpoint
	n    int
}

func (p *fakePublisher) Run(ctx context.Context) error {
	p.mu.Lock()
	p.ran = true
	p.mu.Unlock()
	<-ctx.Done()
	return nil
}

func (p *fakePublisher) PublishEndpoints(eps []endpoint.Endpoint) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last, p.n = eps, p.n+1
}

func (p *fakePublisher) ips() (ips []string, calls int, ran bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.last {
		ips = append(ips, e.IP.String())
	}
	return ips, p.n, p.ran
}

// staticSource is a static cluster source reading clusterYAML.
func staticSource(t *testing.T) *cluster.Static {
	t.Helper()
	file := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(file, []byte(clusterYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := cluster.NewStatic(cluster.StaticConfig{Path: file})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// TestPublisherSeesLocalEndpoints: the Publisher runs with the agent and
// gets the active endpoints after each change, none when nothing changed.
func TestPublisherSeesLocalEndpoints(t *testing.T) {
	node := testbed.NewNode(t, "pub")
	src := staticSource(t)
	pub := &fakePublisher{}
	a, err := New(Config{NodeName: "ha", OVSDB: node.DBAddr(), OpenFlow: node.MgmtAddr("br-int"),
		Bridge: ovsdb.BridgeConfig{Name: "br-int", DatapathType: "netdev"}, TunnelPort: "gre0", TunnelOFPort: 100,
		Cluster: src, Publisher: pub, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	testbed.Eventually(t, 10*time.Second, func() bool { return a.Status().Ready }, "agent never became ready")

	c := attach(t, node, "c1", "blue", "10.100.1.10/16", 10)
	testbed.Eventually(t, 10*time.Second, func() bool {
		ips, _, ran := pub.ips()
		return ran && len(ips) == 1 && ips[0] == "10.100.1.10"
	}, "the new endpoint was not published")
	_, calls, _ := pub.ips()
	node.Vsctl(t, "set", "interface", c.HostIf, "external_ids:unrelated=1") // not an endpoint change
	// A marker behind it: OVSDB events reach the loop in order, so once the
	// marker is published the unrelated change has been handled.
	marker := attach(t, node, "c2", "blue", "10.100.1.11/16", 11)
	testbed.Eventually(t, 10*time.Second, func() bool { ips, _, _ := pub.ips(); return len(ips) == 2 },
		"the marker endpoint was not published")
	if _, n, _ := pub.ips(); n != calls+1 {
		t.Errorf("%d publications for the unrelated change and the marker, want 1 (the marker's)", n-calls)
	}
	node.Vsctl(t, "del-port", "br-int", marker.HostIf)
	node.Vsctl(t, "del-port", "br-int", c.HostIf)
	testbed.Eventually(t, 10*time.Second, func() bool { ips, _, _ := pub.ips(); return len(ips) == 0 },
		"the removed endpoint is still published")
}
