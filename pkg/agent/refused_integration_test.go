package agent

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// TestAgentIsolatesAFlowOVSRefuses (issue 13, finding 4): OVS really
// refuses a flow (l2_forward is full: OVSDB Flow_Table flow_limit with
// overflow_policy=refuse, so the bundle fails at commit with
// OFPFMFC_TABLE_FULL). The endpoint it belongs to is kept out of OVS and
// reported; the rest of the pipeline stays installed and keeps following
// changes and drift repairs; the OpenFlow connection is not redialled; a restarted agent
// becomes ready; when room is made, the retry installs the endpoint.
func TestAgentIsolatesAFlowOVSRefuses(t *testing.T) {
	node := testbed.NewNode(t, "rf")
	h := startAgent(t, node, "ha")
	c1 := attach(t, node, "c1", "blue", "10.100.1.10/16", 11)
	c2 := attach(t, node, "c2", "blue", "10.100.1.11/16", 12)
	all := len(pipeline.FixedFlows(100)) + 2 + 5 + 2*5 // fixed, networks, host hb, c1 and c2
	testbed.Eventually(t, 5*time.Second, func() bool { return agentFlows(t, node, "") == all },
		"want %d agent flows, OVS has:\n%s", all, node.Ofctl(t, "dump-flows", "br-int"))
	l2 := fmt.Sprintf("table=%d", pipeline.L2Forward.ID())
	full, err := node.FlowCount("br-int", l2)
	if err != nil {
		t.Fatal(err)
	}
	// The agent names the table in a Flow_Table row (and puts the name back
	// if the row is replaced): limit that row.
	row := strings.TrimSpace(node.Vsctl(t, "get", "Bridge", "br-int", "flow_tables:"+strconv.Itoa(int(pipeline.L2Forward.ID()))))
	node.Vsctl(t, "set", "Flow_Table", row, "flow_limit="+strconv.Itoa(full), "overflow_policy=refuse")
	of := h.agent.Status().OpenFlow

	c3 := attach(t, node, "c3", "blue", "10.100.1.12/16", 13)
	testbed.Eventually(t, 5*time.Second, func() bool { return h.agent.Status().Reconcile.Failing == 1 },
		"the refused endpoint is not reported: %+v", h.agent.Status().Reconcile)
	checkIsolated(t, h, node, c3.HostIf, all)
	// Drift in the rest of the pipeline is still repaired (before, every
	// bundle carried the refused flow and failed).
	node.Ofctl(t, "del-flows", "br-int", fmt.Sprintf("table=%d,in_port=11", pipeline.SpoofGuard.ID()))
	testbed.Eventually(t, 5*time.Second, func() bool { return agentFlows(t, node, "") == all },
		"c1's deleted flows not put back: %d agent flows in OVS", agentFlows(t, node, ""))
	if ok, out := c1.Ping(c2.Addr.Addr(), 2); !ok {
		t.Fatalf("the rest of the pipeline does not forward: %s", out)
	}
	if st := h.agent.Status(); st.OpenFlow.Connects != of.Connects || st.OpenFlow.Failures != of.Failures || !st.Ready {
		t.Fatalf("OpenFlow connection redialled or agent not ready: %+v, before %+v", st.OpenFlow, of)
	}

	outer := t // the new agent outlives the subtest
	t.Run("restarted agent is ready", func(t *testing.T) {
		h.stop()
		h = startAgent(outer, node, "ha") // fails unless ready within 10 s
		testbed.Eventually(t, 5*time.Second, func() bool { return h.agent.Status().Reconcile.Failing == 1 },
			"the refused endpoint is not reported after the restart: %+v", h.agent.Status().Reconcile)
		checkIsolated(t, h, node, c3.HostIf, all)
	})

	t.Run("room made: the retry installs it", func(t *testing.T) {
		c2Cookie := ofCookie(c2.HostIf)
		node.Vsctl(t, "del-port", "br-int", c2.HostIf)
		testbed.Eventually(t, 5*time.Second, func() bool { return agentFlows(t, node, c2Cookie) == 0 },
			"the removed endpoint's flows stay")
		took := testbed.Eventually(t, 10*time.Second, func() bool { return agentFlows(t, node, ofCookie(c3.HostIf)) == 5 },
			"the isolated endpoint was not installed when l2_forward had room")
		t.Logf("installed %v after the room was made", took)
		if st := h.agent.Status().Reconcile; st.Failing != 0 || st.Refused == 0 {
			t.Fatalf("reconciler stats %+v", st)
		}
		if ok, out := c1.Ping(c3.Addr.Addr(), 2); !ok {
			t.Fatalf("the recovered endpoint does not answer: %s", out)
		}
	})
}

// checkIsolated asserts, with ovs-ofctl, that OVS holds the others' want
// flows and none of port's, and that the agent reports why.
func checkIsolated(t *testing.T, h *harness, node *testbed.Node, port string, want int) {
	t.Helper()
	if n := agentFlows(t, node, ofCookie(port)); n != 0 {
		t.Fatalf("%d flows of the isolated endpoint in OVS", n)
	}
	if n := agentFlows(t, node, ""); n != want {
		t.Fatalf("%d agent flows in OVS, want the other owners' %d:\n%s", n, want, node.Ofctl(t, "dump-flows", "br-int"))
	}
	for _, o := range h.agent.Desired() {
		if o.Owner == endpointOwner(port) {
			if o.Failure == nil || !strings.Contains(o.Failure.Reason, "OFPFMFC_TABLE_FULL") {
				t.Fatalf("owner %s: failure %+v, want OVS's OFPFMFC_TABLE_FULL", o.Name, o.Failure)
			}
			return
		}
	}
	t.Fatalf("no owner for %s", port)
}

// ofCookie is an ovs-ofctl filter for the flows of the endpoint on port.
func ofCookie(port string) string {
	return fmt.Sprintf(",cookie=%#x/%#x", pipeline.Endpoint{Port: port}.Cookie(), pipeline.ObjectMask)
}
