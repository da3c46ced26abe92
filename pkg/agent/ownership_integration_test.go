package agent

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/arp"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// viewSource is a cluster.Source serving a fixed view, as the etcd backend
// would after settling its conflicts.
type viewSource struct {
	v       cluster.View
	updates chan cluster.View
}

func newViewSource(v cluster.View) *viewSource {
	return &viewSource{v: v, updates: make(chan cluster.View)}
}

func (s *viewSource) Run(ctx context.Context) error { <-ctx.Done(); return nil }
func (s *viewSource) Updates() <-chan cluster.View  { return s.updates }
func (s *viewSource) Current() (cluster.View, bool) { return s.v, true }
func (s *viewSource) use(cfg *Config)               { cfg.Cluster = s }

// TestAgentLocalEndpointWinsOverRemoteClaims (etcd mode, real OVS): the
// view holds an older remote claim for local endpoint c1's IP (another
// MAC) and a remote endpoint with c1's MAC. c1 must keep its ARP answer
// and its delivery, both when it is attached after the view (a delta) and
// after an agent restart (everything loaded at once): c2 pings it, and
// ovs-ofctl shows c1's MAC in the ARP answer (issue 13, finding 2, and the
// l2_forward case next to it).
func TestAgentLocalEndpointWinsOverRemoteClaims(t *testing.T) {
	node := testbed.NewNode(t, "lw")
	v := view(100, host("ha", "192.0.2.1", nil), host("hb", "192.0.2.2", nil))
	c1MAC := arp.DerivedMAC(netip.MustParseAddr("10.100.1.10"))
	v.Endpoints = []cluster.RemoteEndpoint{
		remote("blue", "10.100.1.10", "02:00:00:00:0b:0a", "hb"), // c1's IP
		remote("blue", "10.100.2.20", c1MAC.String(), "hb"),      // c1's MAC
	}
	v.Normalize()
	src := newViewSource(v)
	h := startAgent(t, node, "ha", src.use)
	c1 := attach(t, node, "c1", "blue", "10.100.1.10/16", 11)
	c2 := attach(t, node, "c2", "blue", "10.100.1.11/16", 12)

	check := func(t *testing.T) {
		t.Helper()
		arpFlows := fmt.Sprintf("table=%d,arp,arp_tpa=10.100.1.10", pipeline.ARPResponder.ID())
		testbed.Eventually(t, 5*time.Second, func() bool {
			return strings.Contains(node.Ofctl(t, "dump-flows", "br-int", arpFlows), "set_field:"+c1MAC.String()+"->eth_src")
		}, "ARP for c1 is not answered with its MAC %s:\n%s", c1MAC, node.Ofctl(t, "dump-flows", "br-int", arpFlows))
		if ok, out := c2.Ping(c1.Addr.Addr(), 2); !ok {
			t.Fatalf("c2 cannot reach c1: %s\n%s", out, node.Ofctl(t, "dump-flows", "br-int"))
		}
	}
	t.Run("attached after the claims", check)
	h.stop()
	h = startAgent(t, node, "ha", src.use)
	t.Run("after a restart", check)
	if st := h.agent.Status().Reconcile; st.WaitingFlows != 1 {
		t.Fatalf("reconciler %+v: want the remote claim's ARP flow waiting", st)
	}
}
