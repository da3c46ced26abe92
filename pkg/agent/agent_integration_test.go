package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ofctl-agent/ofctl-agent/pkg/arp"
	"github.com/ofctl-agent/ofctl-agent/pkg/cluster"
	"github.com/ofctl-agent/ofctl-agent/pkg/endpoint"
	"github.com/ofctl-agent/ofctl-agent/pkg/ovsdb"
	"github.com/ofctl-agent/ofctl-agent/pkg/pipeline"
	"github.com/ofctl-agent/ofctl-agent/test/testbed"
)

const clusterYAML = `networks:
  - name: blue
    vni: 100
    subnet: 10.100.0.0/16
  - name: red
    vni: 200
    subnet: 10.200.0.0/16
hosts:
  - name: ha
    tunnel_ip: 192.0.2.1
    ranges: { blue: 10.100.1.0/24, red: 10.200.1.0/24 }
  - name: hb
    tunnel_ip: 192.0.2.2
    ranges: { blue: 10.100.2.0/24, red: 10.200.2.0/24 }
`

// harness is one node running an in-process agent.
type harness struct {
	node   *testbed.Node
	agent  *Agent
	cancel context.CancelFunc
	done   chan struct{}
}

func startAgent(t *testing.T, node *testbed.Node, self string, mod ...func(*Config)) *harness {
	t.Helper()
	file := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(file, []byte(clusterYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	return startAgentWith(t, node, self, file, mod...)
}

// startAgentWith runs an agent on node; mod may change its Config.
func startAgentWith(t *testing.T, node *testbed.Node, self, file string, mod ...func(*Config)) *harness {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var a *Agent
	src, err := cluster.NewStatic(cluster.StaticConfig{Path: file, Logger: log, Debounce: 20 * time.Millisecond,
		OnInvalid: func(err error) { a.Reject("cluster", err) }})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{NodeName: self, OVSDB: node.DBAddr(), OpenFlow: node.MgmtAddr("br-int"),
		Bridge: ovsdb.BridgeConfig{Name: "br-int", DatapathType: "netdev"}, TunnelPort: "gre0", TunnelOFPort: 100,
		Cluster: src, VerifyEvery: 200 * time.Millisecond, EchoInterval: time.Second, DeadInterval: 3 * time.Second, Logger: log}
	for _, m := range mod {
		m(&cfg)
	}
	a, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{node: node, agent: a, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(h.done); _ = a.Run(ctx) }()
	t.Cleanup(h.stop)
	testbed.Eventually(t, 10*time.Second, func() bool { return a.Status().Ready }, "agent never became ready")
	return h
}

func (h *harness) stop() {
	h.cancel()
	<-h.done
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func attach(t *testing.T, n *testbed.Node, name, network, ip string, ofport int) *testbed.Container {
	addr := netip.MustParsePrefix(ip)
	c := n.AddContainer(t, name, testbed.ContainerOpts{Addr: addr, MAC: arp.DerivedMAC(addr.Addr())})
	c.AttachTo(t, "br-int", ofport, map[string]string{endpoint.KeyNetwork: network, endpoint.KeyIP: addr.Addr().String()})
	return c
}

// tableMatch selects a pipeline table in ovs-ofctl syntax ("table=5").
func tableMatch(t pipeline.Table) string { return fmt.Sprintf("table=%d", t.ID()) }

// agentFlows counts the flows with the agent's cookie magic, as ovs-ofctl sees them.
func agentFlows(t *testing.T, n *testbed.Node, filter string) int {
	out := n.Ofctl(t, "dump-flows", "br-int", "cookie=0xfca0000000000000/0xffff000000000000"+filter)
	return strings.Count(out, "cookie=0xfca0")
}

func TestAgentProgramsAndRepairs(t *testing.T) {
	node := testbed.NewNode(t, "ag")
	h := startAgent(t, node, "ha")
	c1 := attach(t, node, "c1", "blue", "10.100.1.10/16", 11)
	c2 := attach(t, node, "c2", "blue", "10.100.1.11/16", 12)
	c3 := attach(t, node, "c3", "red", "10.200.1.10/16", 13)

	// 8 fixed + 2 networks + 1 remote host with 2 ranges (5) + 3 endpoints x 5.
	want := len(pipeline.FixedFlows(100)) + 2 + 5 + 15
	testbed.Eventually(t, 5*time.Second, func() bool { return agentFlows(t, node, "") == want },
		"want %d agent flows, OVS has:\n%s", want, node.Ofctl(t, "dump-flows", "br-int"))
	if got := strings.TrimSpace(node.Vsctl(t, "get", "bridge", "br-int", "fail_mode")); got != "secure" {
		t.Fatalf("fail_mode %q", got)
	}
	if ok, out := c1.Ping(c2.Addr.Addr(), 2); !ok { // the positive control of the check below
		t.Fatalf("same-network ping failed: %s", out)
	}
	// Another network: c1 sends to c3's IP and MAC directly (without the
	// route and neighbour the ping never left c1: "Network is unreachable").
	c1.Exec(t, "ip", "route", "add", "10.200.0.0/16", "dev", "eth0")
	c1.Exec(t, "ip", "neigh", "replace", c3.Addr.Addr().String(), "lladdr", c3.MAC.String(), "dev", "eth0", "nud", "permanent")
	c1.NoAnswer(t, c3.Addr.Addr(), 1)

	t.Run("port removed -> its flows removed", func(t *testing.T) {
		cookie := fmt.Sprintf(",cookie=%#x/-1", endpointCookie(h, c3))
		node.Vsctl(t, "del-port", "br-int", c3.HostIf)
		testbed.Eventually(t, 2*time.Second, func() bool { return agentFlows(t, node, cookie) == 0 }, "flows of c3 remain")
	})

	t.Run("del-flows repaired", func(t *testing.T) {
		before := agentFlows(t, node, "")
		node.Ofctl(t, "del-flows", "br-int")
		took := testbed.Eventually(t, 2*time.Second, func() bool { return agentFlows(t, node, "") == before }, "not repaired")
		t.Logf("del-flows repaired in %v", took)
	})

	t.Run("rogue flow removed", func(t *testing.T) {
		node.Ofctl(t, "add-flow", "br-int", tableMatch(pipeline.L2Forward)+",priority=300,actions=output:11")
		took := testbed.Eventually(t, 2*time.Second, func() bool {
			return !strings.Contains(node.Ofctl(t, "dump-flows", "br-int", tableMatch(pipeline.L2Forward)), "priority=300")
		}, "rogue flow still there")
		t.Logf("rogue flow removed in %v", took)
	})

	t.Run("bad external_ids rejected, others untouched", func(t *testing.T) {
		before := h.agent.Status().Rejects["interface"]
		bad := node.AddContainer(t, "bad", testbed.ContainerOpts{})
		bad.AttachTo(t, "br-int", 20, map[string]string{endpoint.KeyNetwork: "blue", endpoint.KeyIP: "10.100.1.999"})
		testbed.Eventually(t, 2*time.Second, func() bool { return h.agent.Status().Rejects["interface"] > before }, "no reject counted")
		if n := agentFlows(t, node, ",in_port=20"); n != 0 {
			t.Fatalf("bad port got %d flows", n)
		}
		if ok, out := c1.Ping(c2.Addr.Addr(), 1); !ok {
			t.Fatalf("others disturbed: %s", out)
		}
	})

	t.Run("ovs-vswitchd restart", func(t *testing.T) {
		want := agentFlows(t, node, "")
		node.KillVswitchd(t)
		node.StartVswitchd(t)
		took := testbed.Eventually(t, 10*time.Second, func() bool {
			out, err := node.OfctlErr("dump-flows", "br-int", "cookie=0xfca0000000000000/0xffff000000000000")
			return err == nil && strings.Count(out, "cookie=0xfca0") == want
		}, "pipeline not back")
		t.Logf("pipeline back %v after vswitchd start", took)
		testbed.Eventually(t, 5*time.Second, func() bool { ok, _ := c1.Ping(c2.Addr.Addr(), 1); return ok }, "ping not back")
	})
}

func endpointCookie(h *harness, c *testbed.Container) uint64 {
	h.agent.model.mu.Lock()
	defer h.agent.model.mu.Unlock()
	return h.agent.model.endpoints[c.HostIf].Cookie()
}

// TestAgentFollowsClusterFile: a host added to the file gets its flows, an
// invalid file is counted and changes nothing, the fixed file applies.
func TestAgentFollowsClusterFile(t *testing.T) {
	node := testbed.NewNode(t, "cf")
	file := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(file, []byte(clusterYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	h := startAgentWith(t, node, "ha", file)
	hostFlows := func() int { return agentFlows(t, node, ",cookie=0xfca0040000000000/0xffffff0000000000") }
	testbed.Eventually(t, 5*time.Second, func() bool { return hostFlows() == 5 }, "host hb flows: %d", hostFlows())

	grown := clusterYAML + `  - name: hc
    tunnel_ip: 192.0.2.3
    ranges: { blue: 10.100.3.0/24 }
`
	if err := os.WriteFile(file, []byte(grown), 0o644); err != nil {
		t.Fatal(err)
	}
	took := testbed.Eventually(t, 5*time.Second, func() bool { return hostFlows() == 5+3 }, "host hc not programmed: %d", hostFlows())
	t.Logf("new host programmed %v after the file was written", took)

	before := node.Ofctl(t, "dump-flows", "br-int", "--no-stats")
	if err := os.WriteFile(file, []byte(grown+"  - name: hd\n    tunnel_ip: not-an-ip\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testbed.Eventually(t, 5*time.Second, func() bool { return h.agent.Status().Rejects["cluster"] > 0 }, "invalid file not counted")
	if after := node.Ofctl(t, "dump-flows", "br-int", "--no-stats"); after != before {
		t.Fatalf("an invalid file changed the flows:\n%s\n---\n%s", before, after)
	}
	if err := os.WriteFile(file, []byte(clusterYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	testbed.Eventually(t, 5*time.Second, func() bool { return hostFlows() == 5 }, "host hc not removed: %d", hostFlows())
}
