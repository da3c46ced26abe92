package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// TestAgentRepairsReportedDrift: with OVS's flow monitor, out-of-band
// changes are repaired from the reports, by scoped syncs (no full Sync
// runs), within tens of milliseconds; a mass change (thousands of reports,
// often a pause of OVS's reports) is repaired as well, by a scoped sync of
// its table and cookie or by a full Sync.
func TestAgentRepairsReportedDrift(t *testing.T) {
	node := testbed.NewNode(t, "dm")
	h := startAgent(t, node, "ha")
	c1 := attach(t, node, "c1", "blue", "10.100.1.10/16", 11)
	attach(t, node, "c2", "blue", "10.100.1.11/16", 12)
	want := len(pipeline.FixedFlows(100)) + 2 + 5 + 10
	testbed.Eventually(t, 5*time.Second, func() bool { return agentFlows(t, node, "") == want }, "pipeline not installed")
	if !h.agent.Status().FlowMonitor {
		t.Fatal("flow monitor not active")
	}
	cookie := fmt.Sprintf(",cookie=%#x/-1", endpointCookie(h, c1))
	spoof, l2 := ","+tableMatch(pipeline.SpoofGuard), ","+tableMatch(pipeline.L2Forward)
	guards := agentFlows(t, node, cookie+spoof)
	if guards == 0 {
		t.Fatal("no spoof-guard flow with the endpoint's cookie")
	}
	cases := []struct {
		name   string
		change func()
		fixed  func() bool
	}{
		{"rogue flow in a table removed", func() {
			node.Ofctl(t, "add-flow", "br-int", tableMatch(pipeline.L2Forward)+",priority=300,ip,nw_dst=10.100.9.9,actions=drop")
		}, func() bool {
			return !strings.Contains(node.Ofctl(t, "dump-flows", "br-int", tableMatch(pipeline.L2Forward)), "priority=300")
		}},
		{"deleted endpoint flows restored", func() { node.Ofctl(t, "del-flows", "br-int", strings.TrimPrefix(cookie+spoof, ",")) },
			func() bool { return agentFlows(t, node, cookie+spoof) == guards }},
		{"modified endpoint flow put back", func() {
			node.Ofctl(t, "mod-flows", "br-int", strings.TrimPrefix(cookie+l2, ",")+",actions=drop")
		}, func() bool {
			return strings.Contains(node.Ofctl(t, "dump-flows", "br-int", strings.TrimPrefix(cookie+l2, ",")), "output:11")
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := h.agent.Status()
			c.change()
			took := testbed.Eventually(t, 2*time.Second, c.fixed, "%s: not repaired", c.name)
			t.Logf("%s: repaired %v after ovs-ofctl returned (polling included)", c.name, took)
			// The statistics are those of the last time the reconciler
			// was free: they may trail OVS by the repair in progress.
			scoped := func(after Status) bool {
				return after.Reconcile.ScopeSyncs != before.Reconcile.ScopeSyncs && after.Reconcile.Syncs == before.Reconcile.Syncs &&
					after.Repairs > before.Repairs
			}
			after := h.agent.Status()
			for deadline := time.Now().Add(2 * time.Second); !scoped(after) && time.Now().Before(deadline); after = h.agent.Status() {
				time.Sleep(10 * time.Millisecond)
			}
			if !scoped(after) {
				t.Fatalf("not a scoped repair: before %+v after %+v", before.Reconcile, after.Reconcile)
			}
		})
	}
	t.Run("mass change", func(t *testing.T) {
		before := h.agent.Status()
		node.Ofctl(t, "--bundle", "add-flows", "br-int", rogueFlows(t, 20_000))
		took := testbed.Eventually(t, 5*time.Second, func() bool { return flowCount(t, node) == want },
			"rogue flows not removed: %d flows", flowCount(t, node))
		repaired := func(after Status) bool {
			b, a := before.Reconcile, after.Reconcile
			return a.Syncs+a.ScopeSyncs != b.Syncs+b.ScopeSyncs && after.Repairs-before.Repairs >= 20_000
		}
		after := h.agent.Status() // the last free reconciler's figures: wait for them to catch up
		for deadline := time.Now().Add(2 * time.Second); !repaired(after) && time.Now().Before(deadline); after = h.agent.Status() {
			time.Sleep(10 * time.Millisecond)
		}
		b, a := before.Reconcile, after.Reconcile
		t.Logf("20,000 rogue flows removed %v after ovs-ofctl returned: %d full and %d scoped syncs, OVS paused its reports %d times",
			took, a.Syncs-b.Syncs, a.ScopeSyncs-b.ScopeSyncs, after.FlowMonitorPauses-before.FlowMonitorPauses)
		if !repaired(after) {
			t.Fatalf("not repaired from the reports: before %+v after %+v", before, after)
		}
	})
}

// TestAgentWithoutFlowMonitor: the periodic full comparison alone still
// repairs drift (the behaviour with an OVS that refuses the monitor).
func TestAgentWithoutFlowMonitor(t *testing.T) {
	node := testbed.NewNode(t, "nm")
	h := startAgent(t, node, "ha", func(c *Config) { c.NoFlowMonitor = true })
	if h.agent.Status().FlowMonitor {
		t.Fatal("flow monitor active")
	}
	before := h.agent.Status().Reconcile
	node.Ofctl(t, "add-flow", "br-int", tableMatch(pipeline.L2Forward)+",priority=300,actions=drop")
	took := testbed.Eventually(t, 2*time.Second, func() bool {
		return !strings.Contains(node.Ofctl(t, "dump-flows", "br-int", tableMatch(pipeline.L2Forward)), "priority=300")
	}, "rogue flow still there")
	t.Logf("rogue flow removed by the periodic comparison in %v", took)
	if after := h.agent.Status().Reconcile; after.ScopeSyncs != 0 || after.Syncs == before.Syncs {
		t.Fatalf("stats before %+v after %+v", before, after)
	}
}

// rogueFlows writes n flows for ovs-ofctl add-flows in l2_forward (cookie 0)
// and returns the file's path.
func rogueFlows(t *testing.T, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%s,priority=1,ip,nw_dst=10.99.%d.%d,actions=drop\n", tableMatch(pipeline.L2Forward), i>>8, i&0xff)
	}
	path := filepath.Join(t.TempDir(), "rogue.flows")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// flowCount is the bridge's flow count per ovs-ofctl dump-aggregate.
func flowCount(t *testing.T, n *testbed.Node) int {
	t.Helper()
	c, err := n.FlowCount("br-int")
	if err != nil {
		t.Fatal(err)
	}
	return c
}
