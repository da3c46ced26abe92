package agent

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

// ifaceIDs reads an interface's external_ids with ovs-vsctl.
func ifaceIDs(t *testing.T, n *testbed.Node, port string) map[string]string {
	t.Helper()
	var out struct {
		Data [][]json.RawMessage `json:"data"`
	}
	raw := n.Vsctl(t, "--format=json", "--columns=external_ids", "list", "interface", port)
	if err := json.Unmarshal([]byte(raw), &out); err != nil || len(out.Data) != 1 || len(out.Data[0]) != 1 {
		t.Fatalf("ovs-vsctl list interface %s: %v\n%s", port, err, raw)
	}
	var m []json.RawMessage // ["map", [[k, v], ...]]
	var pairs [][2]string
	if err := json.Unmarshal(out.Data[0][0], &m); err != nil || len(m) != 2 || json.Unmarshal(m[1], &pairs) != nil {
		t.Fatalf("external_ids of %s: %s", port, out.Data[0][0])
	}
	ids := map[string]string{}
	for _, p := range pairs {
		ids[p[0]] = p[1]
	}
	return ids
}

// waitStatus waits until OVSDB shows the port's status keys as want
// (Error: a part of the reason).
func waitStatus(t *testing.T, n *testbed.Node, port string, want endpoint.Status) {
	t.Helper()
	var got endpoint.Status
	testbed.Eventually(t, 10*time.Second, func() bool {
		got = endpoint.StatusOf(ifaceIDs(t, n, port))
		return got.Installed == want.Installed && (got.Error == "") == (want.Error == "") && strings.Contains(got.Error, want.Error)
	}, "port %s: status %+v, want %+v", port, &got, want)
}

// endpointFlows counts the flows of the endpoint on port in OVS.
func endpointFlows(t *testing.T, n *testbed.Node, port string) int {
	c := pipeline.Endpoint{Port: port}.Cookie()
	return strings.Count(n.Ofctl(t, "dump-flows", "br-int", fmt.Sprintf("cookie=%#x/%#x", c, pipeline.ObjectMask)), "cookie=")
}

// The agent marks an endpoint installed once its flows are in OVS, says
// why it refuses the others, and follows changes; its own writes do not
// make it reprogram anything.
func TestAgentMarksInstalledEndpoints(t *testing.T) {
	node := testbed.NewNode(t, "mk")
	h := startAgent(t, node, "ha")
	c1 := attach(t, node, "c1", "blue", "10.100.1.10/16", 11)
	waitStatus(t, node, c1.HostIf, endpoint.Status{Installed: "10.100.1.10"})
	if n := endpointFlows(t, node, c1.HostIf); n != 5 {
		t.Fatalf("marked installed with %d of its 5 flows in OVS", n)
	}

	c2 := attach(t, node, "c2", "blue", "10.100.1.10/16", 12)
	waitStatus(t, node, c2.HostIf, endpoint.Status{Error: "interface vc2: ip 10.100.1.10 in network blue is already held by interface vc1"})
	c3 := attach(t, node, "c3", "blue", "10.100.2.50/16", 13)
	waitStatus(t, node, c3.HostIf, endpoint.Status{Error: "inside host hb's range 10.100.2.0/24 of network blue"})
	for _, c := range []*testbed.Container{c2, c3} {
		if n := endpointFlows(t, node, c.HostIf); n != 0 {
			t.Fatalf("%s: refused but has %d flows", c.HostIf, n)
		}
	}
	if got := h.agent.Status().Rejects; got["endpoint"] != 1 || got["conflict"] != 1 {
		t.Fatalf("rejects %v: want one endpoint and one conflict (each reported once)", got)
	}

	// The marks written above come back as interface events: they must
	// not cost a flow_mod. Two more endpoints, each marked after the
	// previous one's mark came back: exactly their 10 flows are sent.
	before := h.agent.Status().Reconcile.FlowMods
	c4 := attach(t, node, "c4", "blue", "10.100.1.14/16", 14)
	waitStatus(t, node, c4.HostIf, endpoint.Status{Installed: "10.100.1.14"})
	c5 := attach(t, node, "c5", "blue", "10.100.1.15/16", 15)
	waitStatus(t, node, c5.HostIf, endpoint.Status{Installed: "10.100.1.15"})
	if d := h.agent.Status().Reconcile.FlowMods - before; d != 10 {
		t.Fatalf("%d flow_mods for two endpoints of 5 flows each", d)
	}

	// The holder leaves: the waiting port is programmed and marked.
	node.Vsctl(t, "del-port", "br-int", c1.HostIf)
	waitStatus(t, node, c2.HostIf, endpoint.Status{Installed: "10.100.1.10"})
	if n := endpointFlows(t, node, c2.HostIf); n != 5 {
		t.Fatalf("new holder marked with %d flows", n)
	}
	// An endpoint that becomes invalid loses its mark and its flows.
	node.Vsctl(t, "set", "interface", c5.HostIf, "external_ids:"+endpoint.KeyNetwork+"=green")
	waitStatus(t, node, c5.HostIf, endpoint.Status{Error: "no such network in the cluster view"})
	testbed.Eventually(t, 5*time.Second, func() bool { return endpointFlows(t, node, c5.HostIf) == 0 }, "flows of the refused port stay")
	// A hand edit of a mark is put right.
	node.Vsctl(t, "remove", "interface", c4.HostIf, "external_ids", endpoint.KeyInstalled)
	waitStatus(t, node, c4.HostIf, endpoint.Status{Installed: "10.100.1.14"})

	// ovs-vswitchd restarts: the agent puts the flows back, the marks stay
	// as they are. A port added afterwards is marked (the marks were
	// judged again); no other mark was written.
	at := len(node.DBLog(t))
	node.KillVswitchd(t)
	node.StartVswitchd(t)
	testbed.Eventually(t, 15*time.Second, func() bool { return endpointFlows(t, node, c4.HostIf) == 5 }, "flows not back")
	c6 := attach(t, node, "c6", "blue", "10.100.1.16/16", 16)
	waitStatus(t, node, c6.HostIf, endpoint.Status{Installed: "10.100.1.16"})
	if w := statusWrites(t, node, at); strings.Join(w, " ") != c6.HostIf {
		t.Fatalf("statuses written across the ovs-vswitchd restart: %v, want %s's alone", w, c6.HostIf)
	}
}

// statusWrites lists, in order, the rows whose status keys OVSDB's log
// shows written since record at.
func statusWrites(t *testing.T, n *testbed.Node, at int) []string {
	var rows []string
	for _, r := range n.DBLog(t)[at:] {
		rows = append(rows, r.RowsTouching("ofctl-agent.installed")...)
		for _, row := range r.RowsTouching("ofctl-agent.error") {
			if !slices.Contains(r.RowsTouching("ofctl-agent.installed"), row) {
				rows = append(rows, row)
			}
		}
	}
	return rows
}

// Issue 13, item 3: the port that held an address keeps it across a
// restart of the agent, whatever the names; a restart whose marks are
// right writes none.
func TestAgentRestartKeepsTheAddressHolder(t *testing.T) {
	node := testbed.NewNode(t, "hold")
	h := startAgent(t, node, "ha")
	holder := attach(t, node, "zz", "blue", "10.100.1.20/16", 21) // port vzz
	other := attach(t, node, "oo", "blue", "10.100.1.21/16", 23)
	waitStatus(t, node, holder.HostIf, endpoint.Status{Installed: "10.100.1.20"})
	waitStatus(t, node, other.HostIf, endpoint.Status{Installed: "10.100.1.21"})
	h.stop()

	// While the agent is down a port claims the holder's address; its
	// name sorts first.
	rogue := attach(t, node, "aa", "blue", "10.100.1.20/16", 22) // port vaa
	testbed.Eventually(t, 5*time.Second, func() bool {
		return strings.TrimSpace(node.Vsctl(t, "get", "interface", rogue.HostIf, "ofport")) == "22"
	}, "rogue port never got its ofport")
	logAt := len(node.DBLog(t))

	h = startAgent(t, node, "ha")
	waitStatus(t, node, rogue.HostIf, endpoint.Status{Error: "interface vaa: ip 10.100.1.20 in network blue is already held by interface vzz"})
	if n, r := endpointFlows(t, node, holder.HostIf), endpointFlows(t, node, rogue.HostIf); n != 5 || r != 0 {
		t.Fatalf("after the restart: holder %d flows, rogue %d; want 5 and 0", n, r)
	}
	// The holder reaches its neighbour (the probe works); the rogue, with
	// no flows, does not.
	if ok, out := holder.Ping(other.Addr.Addr(), 1); !ok {
		t.Fatalf("the holder cannot reach its neighbour:\n%s", out)
	}
	if ok, out := rogue.Ping(other.Addr.Addr(), 1); ok {
		t.Fatalf("the rogue reaches the holder's neighbour:\n%s", out)
	}
	// A new endpoint marked after the restart: by then every row was
	// judged. Only the rogue's refusal and the new mark were written.
	fresh := attach(t, node, "nn", "blue", "10.100.1.30/16", 24)
	waitStatus(t, node, fresh.HostIf, endpoint.Status{Installed: "10.100.1.30"})
	if w := statusWrites(t, node, logAt); strings.Join(w, " ") != "vaa vnn" {
		t.Fatalf("statuses written since the restart: %v, want the rogue's refusal, then the new port's mark", w)
	}
	if ids := ifaceIDs(t, node, holder.HostIf); !maps.Equal(ids, map[string]string{endpoint.KeyNetwork: "blue",
		endpoint.KeyIP: "10.100.1.20", endpoint.KeyInstalled: "10.100.1.20"}) {
		t.Fatalf("holder's external_ids %v", ids)
	}
}
